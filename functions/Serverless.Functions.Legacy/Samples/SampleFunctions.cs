using System.Text;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Timers;

namespace Serverless.Functions.Samples;

/// <summary>Sample functions that show each trigger until the federated round lands.</summary>
public sealed class SampleFunctions(IQueueStore queues, TimeProvider time)
{
    public sealed record EchoRequest(string Message);

    public sealed record EchoResponse(string Message, string InvocationId, DateTimeOffset At);

    /// <summary>POST /api/samples/echo {"message":"hi"} answers the message back; GET /api/samples/echo?message=hi too.</summary>
    [Function("SampleEcho"), AllowAnonymous]
    public EchoResponse Echo([HttpTrigger("post", Route = "samples/echo")] HttpRequest request, EchoRequest body, FunctionContext context) =>
        new(body.Message, context.InvocationId, time.GetUtcNow());

    [Function("SampleEchoGet"), AllowAnonymous]
    public IResult EchoGet([HttpTrigger("get", Route = "samples/echo")] HttpRequest request, string? message, FunctionContext context) =>
        string.IsNullOrEmpty(message)
            ? Results.Problem(title: "The query parameter 'message' is required.", statusCode: StatusCodes.Status400BadRequest)
            : Results.Ok(new EchoResponse(message, context.InvocationId, time.GetUtcNow()));

    /// <summary>POST /api/samples/jobs enqueues a job for <see cref="ProcessJob"/>; 202 with the message id.</summary>
    [Function("SampleEnqueue"), AllowAnonymous] // a sample: real endpoints declare [RequirePermission]
    public async Task<IResult> Enqueue([HttpTrigger("post", Route = "samples/jobs")] HttpRequest request, EchoRequest body, CancellationToken cancellationToken)
    {
        var id = await queues.PutAsync("sample-jobs", Encoding.UTF8.GetBytes(body.Message), cancellationToken: cancellationToken);
        return Results.Accepted(value: new { messageId = id });
    }

    /// <summary>Consumes the sample queue; a message "fail" fails every time and ends in sample-jobs-poison.</summary>
    [Function("SampleProcessJob")]
    public void ProcessJob([QueueTrigger("sample-jobs")] string message, int dequeueCount, ILogger logger)
    {
        if (message == "fail") throw new InvalidOperationException("the sample job was asked to fail");
        logger.LogInformation("Processed sample job '{Message}' (attempt {Attempt})", message, dequeueCount);
    }

    /// <summary>Every five minutes; reports when it catches up a missed occurrence.</summary>
    [Function("SampleHeartbeat")]
    public void Heartbeat([TimerTrigger("0 */5 * * * *")] TimerInfo timer, ILogger logger) =>
        logger.LogInformation("Heartbeat (past due: {PastDue}, last: {Last:O})", timer.IsPastDue, timer.ScheduleStatus?.Last);
}
