using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;

namespace Serverless.Telemetry;

/// <summary>
/// The one place that decides what telemetry may carry. A span tag, a log attribute or a metric dimension
/// whose name is not listed here is removed before export, whoever set it (our code, ASP.NET Core, HttpClient,
/// the Functions worker, DurableTask). Names that can hold data are left out on purpose: url.full and
/// url.query (a function key rides in ?code=), url.path, user_agent.original, exception.message and
/// exception.stacktrace (an exception's text may quote its input), and every log parameter not named here.
/// </summary>
public static class AttributeAllowList
{
    public static readonly FrozenSet<string> Names = new[]
    {
        // HTTP server and client (OpenTelemetry semantic conventions 1.2x), without the URL's path and query.
        "http.request.method", "http.request.method_original", "http.response.status_code", "http.route",
        "url.scheme", "server.address", "server.port", "network.protocol.version", "error.type",
        // gRPC between the host and the worker.
        "rpc.system", "rpc.service", "rpc.method", "rpc.grpc.status_code",
        // Functions invocations.
        "faas.name", "faas.trigger", "faas.invocation_id", "faas.execution", "faas.coldstart", "az.schema_url",
        // Durable Task spans (orchestration and activity names and ids: the app's, never their inputs).
        "durabletask.type", "durabletask.task.name", "durabletask.task.version", "durabletask.task.instance_id",
        "durabletask.task.execution_id", "durabletask.task.task_id", "durabletask.runtime_status", "durabletask.event.name",
        // The product's own.
        "serverless.federation", "serverless.round", "serverless.phase", "serverless.outcome", "serverless.queue",
        "serverless.clients", "serverless.survivors", "serverless.dropouts", "serverless.bytes", "serverless.records",
        "serverless.role", "serverless.instance", "serverless.agent",
        "exception.type",
        // Log parameters the product's log templates use for ids and counts.
        "Function", "InvocationId", "Trigger", "Queue", "Round", "Federation", "Phase", "Instance", "Outcome",
    }.ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Whether a log record keeps this attribute: allowed names, and the template itself.</summary>
    internal static bool AllowsLogAttribute(string key) => key == "{OriginalFormat}" || Names.Contains(key);

    /// <summary>The metric view every meter gets: dimensions only from the allow-list.</summary>
    public static MetricStreamConfiguration MetricView(Instrument instrument) => new() { TagKeys = [.. Names] };
}

/// <summary>Removes disallowed span tags when a span ends, and the status text of failed spans (it can quote an exception).</summary>
public sealed class SpanAttributeFilter : BaseProcessor<Activity>
{
    public override void OnEnd(Activity activity)
    {
        List<string>? drop = null;
        foreach (var tag in activity.TagObjects)
        {
            if (!AttributeAllowList.Names.Contains(tag.Key)) (drop ??= []).Add(tag.Key);
        }
        if (drop is not null)
        {
            foreach (var key in drop) activity.SetTag(key, null);
        }
        if (activity.Status == ActivityStatusCode.Error && activity.StatusDescription is not null)
            activity.SetStatus(ActivityStatusCode.Error, "error");
        foreach (var item in activity.Baggage)
        {
            if (!AttributeAllowList.Names.Contains(item.Key)) activity.SetBaggage(item.Key, null);
        }
    }
}

/// <summary>
/// Keeps a log record's template, not its rendered text, and only allowed attributes; an exception leaves its
/// type and nothing else (its message and stack can quote values).
/// </summary>
public sealed class LogAttributeFilter : BaseProcessor<LogRecord>
{
    public override void OnEnd(LogRecord record)
    {
        record.FormattedMessage = null;
        var kept = new List<KeyValuePair<string, object?>>();
        if (record.Attributes is { } attributes)
        {
            foreach (var a in attributes)
            {
                if (AttributeAllowList.AllowsLogAttribute(a.Key)) kept.Add(a);
            }
        }
        if (record.Exception is { } exception)
        {
            kept.Add(new("exception.type", exception.GetType().FullName));
            record.Exception = null;
        }
        record.Attributes = kept;
    }
}
