using System.Security.Cryptography;
using System.Text;
using DurableTask.Core;
using DurableTask.Core.History;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Serverless.Host.Http;

namespace Serverless.Host.Durable;

/// <summary>
/// Durable Functions' HTTP management API under <c>/runtime/webhooks/durabletask</c>, the URLs that
/// CreateCheckStatusResponse hands out: instance status (202 while running, 200 when done, 404 unknown),
/// raiseEvent, terminate, suspend, resume, and purge (DELETE). Like the Functions host it needs the
/// extension's system key or the master key, in <c>code</c> or <c>x-functions-key</c>.
/// </summary>
internal sealed class DurableHttpApi(DurableBackend backend, FunctionKeys keys, string systemKey)
{
    internal const string BasePath = "runtime/webhooks/durabletask";

    private readonly byte[] _systemKey = Encoding.UTF8.GetBytes(systemKey);

    public void Map(IEndpointRouteBuilder routes)
    {
        const string instance = "/" + BasePath + "/instances/{instanceId}";
        routes.MapGet(instance, context => Guarded(context, GetStatusAsync));
        routes.MapDelete(instance, context => Guarded(context, PurgeAsync));
        routes.MapPost(instance + "/raiseEvent/{eventName}", context => Guarded(context, RaiseEventAsync));
        routes.MapPost(instance + "/terminate", context => Guarded(context, c => SendControlAsync(c, Control.Terminate)));
        routes.MapPost(instance + "/suspend", context => Guarded(context, c => SendControlAsync(c, Control.Suspend)));
        routes.MapPost(instance + "/resume", context => Guarded(context, c => SendControlAsync(c, Control.Resume)));
    }

    private Task Guarded(HttpContext context, Func<HttpContext, Task> handler)
    {
        HttpRequest request = context.Request;
        string? presented = request.Query.TryGetValue(HttpTriggers.KeyQueryName, out var code) ? code.ToString()
            : request.Headers.TryGetValue(HttpTriggers.KeyHeaderName, out var header) ? header.ToString() : null;
        bool allowed = presented is { Length: > 0 }
            && (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _systemKey)
                | keys.Allows(AuthLevel.Admin, DurableClientBinding.SystemKeyName, presented));
        if (!allowed)
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Task.CompletedTask;
        }
        return handler(context);
    }

    private async Task GetStatusAsync(HttpContext context)
    {
        OrchestrationState? state = await GetStateAsync(context);
        if (state is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        bool showInput = !context.Request.Query.TryGetValue("showInput", out var show) || !bool.TryParse(show, out bool s) || s;
        bool errorOnFailure = context.Request.Query.TryGetValue("returnInternalServerErrorOnFailure", out var e500)
            && bool.TryParse(e500, out bool e) && e;
        context.Response.StatusCode = state.OrchestrationStatus switch
        {
            OrchestrationStatus.Running or OrchestrationStatus.Pending or OrchestrationStatus.ContinuedAsNew or OrchestrationStatus.Suspended
                => StatusCodes.Status202Accepted,
            OrchestrationStatus.Failed => errorOnFailure ? StatusCodes.Status500InternalServerError : StatusCodes.Status200OK,
            _ => StatusCodes.Status200OK,
        };
        if (context.Response.StatusCode == StatusCodes.Status202Accepted)
        {
            context.Response.Headers.Location = context.Request.Scheme + "://" + context.Request.Host + context.Request.Path + context.Request.QueryString;
            // As the Functions host: some clients otherwise poll in a tight loop.
            context.Response.Headers.RetryAfter = "5";
        }
        var payload = new StatusPayload(
            state.Name,
            state.OrchestrationInstance.InstanceId,
            state.OrchestrationStatus.ToString(),
            showInput ? AsJson(state.Input) : null,
            AsJson(state.Status),
            AsJson(state.Output),
            state.CreatedTime.ToUniversalTime().ToString("s", System.Globalization.CultureInfo.InvariantCulture) + "Z",
            state.LastUpdatedTime.ToUniversalTime().ToString("s", System.Globalization.CultureInfo.InvariantCulture) + "Z");
        await context.Response.WriteAsJsonAsync(payload, DurableJson.Default.StatusPayload);
    }

    private async Task PurgeAsync(HttpContext context)
    {
        OrchestrationState? state = await GetStateAsync(context);
        if (state is null)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        if (backend.Client is not IOrchestrationServicePurgeClient purge)
        {
            context.Response.StatusCode = StatusCodes.Status501NotImplemented;
            return;
        }
        PurgeResult result = await purge.PurgeInstanceStateAsync(state.OrchestrationInstance.InstanceId);
        await context.Response.WriteAsJsonAsync(new PurgePayload(result.DeletedInstanceCount), DurableJson.Default.PurgePayload);
    }

    private async Task RaiseEventAsync(HttpContext context)
    {
        OrchestrationState? state = await GetRunningStateAsync(context);
        if (state is null) return;
        if (!string.Equals(context.Request.ContentType?.Split(';')[0].Trim(), "application/json", StringComparison.OrdinalIgnoreCase))
        {
            await Results.Problem(statusCode: StatusCodes.Status400BadRequest, detail: "Only application/json request content is supported").ExecuteAsync(context);
            return;
        }
        string body;
        using (var reader = new StreamReader(context.Request.Body, Encoding.UTF8))
        {
            body = await reader.ReadToEndAsync(context.RequestAborted);
        }
        try
        {
            using JsonDocument _ = JsonDocument.Parse(body.Length == 0 ? "null" : body);
        }
        catch (JsonException)
        {
            await Results.Problem(statusCode: StatusCodes.Status400BadRequest, detail: "Invalid JSON content").ExecuteAsync(context);
            return;
        }
        string eventName = (string)context.GetRouteValue("eventName")!;
        await backend.Client.SendTaskOrchestrationMessageAsync(new TaskMessage
        {
            OrchestrationInstance = new OrchestrationInstance { InstanceId = state.OrchestrationInstance.InstanceId },
            Event = new EventRaisedEvent(-1, body.Length == 0 ? null : body) { Name = eventName },
        });
        context.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    private enum Control { Terminate, Suspend, Resume }

    private async Task SendControlAsync(HttpContext context, Control control)
    {
        OrchestrationState? state = await GetRunningStateAsync(context);
        if (state is null) return;
        string? reason = context.Request.Query.TryGetValue("reason", out var r) ? r.ToString() : null;
        string id = state.OrchestrationInstance.InstanceId;
        switch (control)
        {
            case Control.Terminate:
                await backend.Client.ForceTerminateTaskOrchestrationAsync(id, reason);
                break;
            case Control.Suspend:
                await backend.Client.SendTaskOrchestrationMessageAsync(new TaskMessage
                {
                    OrchestrationInstance = new OrchestrationInstance { InstanceId = id },
                    Event = new ExecutionSuspendedEvent(-1, reason),
                });
                break;
            case Control.Resume:
                await backend.Client.SendTaskOrchestrationMessageAsync(new TaskMessage
                {
                    OrchestrationInstance = new OrchestrationInstance { InstanceId = id },
                    Event = new ExecutionResumedEvent(-1, reason),
                });
                break;
        }
        context.Response.StatusCode = StatusCodes.Status202Accepted;
    }

    // The instance an event or a control is for, or null once the answer is written: 404 for an unknown
    // instance, 410 for a finished one (the Durable extension's webhook answers the same).
    private async Task<OrchestrationState?> GetRunningStateAsync(HttpContext context)
    {
        OrchestrationState? state = await GetStateAsync(context);
        if (state is null) context.Response.StatusCode = StatusCodes.Status404NotFound;
        else if (IsFinished(state.OrchestrationStatus)) context.Response.StatusCode = StatusCodes.Status410Gone;
        else return state;
        return null;
    }

    private async Task<OrchestrationState?> GetStateAsync(HttpContext context)
    {
        string instanceId = (string)context.GetRouteValue("instanceId")!;
        IList<OrchestrationState> states = await backend.Client.GetOrchestrationStateAsync(instanceId, allExecutions: false);
        return states is { Count: > 0 } ? states[0] : null;
    }

    private static bool IsFinished(OrchestrationStatus status) =>
        status is OrchestrationStatus.Completed or OrchestrationStatus.Failed or OrchestrationStatus.Terminated or OrchestrationStatus.Canceled;

    /// <summary>Input, output and custom status are JSON text in the store; the payload embeds them as JSON.</summary>
    private static JsonElement? AsJson(string? text)
    {
        if (text is null)
        {
            return null;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return JsonSerializer.SerializeToElement(text, DurableJson.Default.String);
        }
    }
}
