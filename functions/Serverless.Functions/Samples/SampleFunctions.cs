using System.Text;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Azure.Functions.Worker;
using Serverless.Storage;

namespace Serverless.Functions.Samples;

/// <summary>Sample functions that show each trigger until the federated round lands.</summary>
public sealed class SampleFunctions(IQueueStore queues, TimeProvider time, ILogger<SampleFunctions> logger)
{
    public sealed record EchoRequest(string Message);

    public sealed record EchoResponse(string Message, string InvocationId, DateTimeOffset At);

    /// <summary>POST /api/samples/echo {"message":"hi"} answers the message back; GET /api/samples/echo?message=hi too.</summary>
    [Function("SampleEcho"), AllowAnonymous]
    public async Task<IResult> Echo([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "samples/echo")] HttpRequest request, FunctionContext context)
    {
        var body = await ReadAsync(request, context.CancellationToken);
        return body is null ? MessageRequired() : Results.Ok(new EchoResponse(body.Message, context.InvocationId, time.GetUtcNow()));
    }

    [Function("SampleEchoGet"), AllowAnonymous]
    public IResult EchoGet([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "samples/echo")] HttpRequest request, FunctionContext context) =>
        request.Query["message"].ToString() is { Length: > 0 } message
            ? Results.Ok(new EchoResponse(message, context.InvocationId, time.GetUtcNow()))
            : Results.Problem(title: "The query parameter 'message' is required.", statusCode: StatusCodes.Status400BadRequest);

    /// <summary>POST /api/samples/jobs enqueues a job for <see cref="ProcessJob"/>; 202 with the message id.</summary>
    [Function("SampleEnqueue"), AllowAnonymous] // a sample: real endpoints declare [RequirePermission]
    public async Task<IResult> Enqueue([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "samples/jobs")] HttpRequest request, CancellationToken cancellationToken)
    {
        if (await ReadAsync(request, cancellationToken) is not { } body) return MessageRequired();
        var id = await queues.PutAsync("sample-jobs", Encoding.UTF8.GetBytes(body.Message), cancellationToken: cancellationToken);
        return Results.Accepted(value: new { messageId = id });
    }

    /// <summary>Consumes the sample queue; a message "fail" fails every time and ends in sample-jobs-poison.</summary>
    [Function("SampleProcessJob")]
    public void ProcessJob([QueueTrigger("sample-jobs")] string message, FunctionContext context)
    {
        if (message == "fail") throw new InvalidOperationException("the sample job was asked to fail");
        var attempt = context.BindingContext.BindingData.TryGetValue("DequeueCount", out var count) ? count : null;
        logger.LogInformation("Processed sample job '{Message}' (attempt {Attempt})", message, attempt);
    }

    private static async Task<EchoRequest?> ReadAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        try
        {
            var body = await System.Text.Json.JsonSerializer.DeserializeAsync<EchoRequest>(request.Body, System.Text.Json.JsonSerializerOptions.Web, cancellationToken);
            return body is { Message: not null } ? body : null;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private static IResult MessageRequired() =>
        Results.Problem(title: "The body must be JSON {\"message\": \"...\"}.", statusCode: StatusCodes.Status400BadRequest);

    /// <summary>Every five minutes; reports when it catches up a missed occurrence.</summary>
    [Function("SampleHeartbeat")]
    public void Heartbeat([TimerTrigger("0 */5 * * * *")] TimerInfo timer) =>
        logger.LogInformation("Heartbeat (past due: {PastDue}, last: {Last:O})", timer.IsPastDue, timer.ScheduleStatus?.Last);
}
