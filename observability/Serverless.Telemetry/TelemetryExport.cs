using Azure.Monitor.OpenTelemetry.Exporter;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Serverless.Telemetry;

/// <summary>
/// Where telemetry goes: OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (its protocol, batch delay and metric
/// interval from the standard <c>OTEL_*</c> variables), Azure Monitor when <c>APPLICATIONINSIGHTS_CONNECTION_STRING</c>
/// is set (bicep sets it in the cloud), and nowhere by default: then no provider is built and nothing listens.
/// </summary>
/// <param name="OtlpEndpoint">An OTLP/HTTP endpoint given in code (a local receiver) rather than by the environment.</param>
public sealed record TelemetryExport(bool Otlp, string? AzureMonitorConnectionString, Uri? OtlpEndpoint = null)
{
    /// <summary>OTLP/HTTP protobuf to a receiver in this process (the simulation's), with short batches.</summary>
    public static TelemetryExport ToReceiver(Uri endpoint) => new(true, null, endpoint);

    public const string OtlpEndpointSetting = "OTEL_EXPORTER_OTLP_ENDPOINT";
    public const string AzureMonitorSetting = "APPLICATIONINSIGHTS_CONNECTION_STRING";

    public bool Enabled => Otlp || AzureMonitorConnectionString is not null;

    public static TelemetryExport From(Func<string, string?> setting) => new(
        !string.IsNullOrWhiteSpace(setting(OtlpEndpointSetting)),
        string.IsNullOrWhiteSpace(setting(AzureMonitorSetting)) ? null : setting(AzureMonitorSetting));

    public static TelemetryExport FromEnvironment() => From(Environment.GetEnvironmentVariable);

    /// <summary>Every source the product traces: its own, the Functions worker's invocations and Durable Task's.</summary>
    public static readonly string[] Sources = [ServerlessTelemetry.Name, "Microsoft.Azure.Functions.Worker", "Microsoft.DurableTask", "DurableTask.Core"];

    internal void Configure(TracerProviderBuilder tracing)
    {
        tracing.AddSource(Sources)
            // A request made outside any trace (a poll, a storage backend's own loop) is not a span of its own:
            // the request span is the current activity here, and it has a parent only inside a trace.
            .AddHttpClientInstrumentation(o => o.FilterHttpRequestMessage = _ => Activity.Current is { } request && request.ParentSpanId != default)
            .AddProcessor(new SpanAttributeFilter());
        if (OtlpEndpoint is { } endpoint) tracing.AddOtlpExporter(o => { Point(o, endpoint, "v1/traces"); o.BatchExportProcessorOptions.ScheduledDelayMilliseconds = 200; });
        else if (Otlp) tracing.AddOtlpExporter();
        if (AzureMonitorConnectionString is { } cs) tracing.AddAzureMonitorTraceExporter(o => AzureMonitor(o, cs));
    }

    /// <summary>
    /// The connection string, and Entra ID authentication when the app setting asks for it (bicep sets
    /// <c>APPLICATIONINSIGHTS_AUTHENTICATION_STRING=ClientId=...;Authorization=AAD</c>: local auth is off on the component).
    /// </summary>
    private static void AzureMonitor(AzureMonitorExporterOptions o, string connectionString)
    {
        o.ConnectionString = connectionString;
        var auth = Environment.GetEnvironmentVariable("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") ?? "";
        if (!auth.Contains("Authorization=AAD", StringComparison.OrdinalIgnoreCase)) return;
        var clientId = auth.Split(';').Select(p => p.Split('=', 2)).FirstOrDefault(kv => kv.Length == 2 && kv[0].Trim().Equals("ClientId", StringComparison.OrdinalIgnoreCase))?[1].Trim();
        o.Credential = clientId is { Length: > 0 } ? new Azure.Identity.ManagedIdentityCredential(Azure.Identity.ManagedIdentityId.FromUserAssignedClientId(clientId))
            : new Azure.Identity.DefaultAzureCredential();
    }

    private static void Point(OpenTelemetry.Exporter.OtlpExporterOptions o, Uri endpoint, string signal)
    {
        o.Endpoint = new Uri(endpoint, signal);
        o.Protocol = OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf;
    }

    internal void Configure(MeterProviderBuilder metrics)
    {
        metrics.AddMeter(ServerlessTelemetry.Name)
            .AddHttpClientInstrumentation()
            .AddView(AttributeAllowList.MetricView);
        if (OtlpEndpoint is { } endpoint)
            metrics.AddOtlpExporter((o, reader) => { Point(o, endpoint, "v1/metrics"); reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 1000; });
        else if (Otlp) metrics.AddOtlpExporter();
        if (AzureMonitorConnectionString is { } cs) metrics.AddAzureMonitorMetricExporter(o => AzureMonitor(o, cs));
    }

    internal void Configure(OpenTelemetryLoggerOptions logs)
    {
        logs.IncludeFormattedMessage = false;
        logs.IncludeScopes = false;
        logs.AddProcessor(new LogAttributeFilter());
        if (OtlpEndpoint is { } endpoint) logs.AddOtlpExporter(o => { Point(o, endpoint, "v1/logs"); o.BatchExportProcessorOptions.ScheduledDelayMilliseconds = 200; });
        else if (Otlp) logs.AddOtlpExporter();
        if (AzureMonitorConnectionString is { } cs) logs.AddAzureMonitorLogExporter(o => AzureMonitor(o, cs));
    }
}

/// <summary>Starting telemetry in each kind of process.</summary>
public static class TelemetrySetup
{
    /// <summary>
    /// For a process with a service container (the function app): traces, metrics and logs when export is
    /// configured, else null and nothing is registered. ASP.NET Core's server spans are included.
    /// </summary>
    public static OpenTelemetryBuilder? AddServerlessTelemetry(this IServiceCollection services, IConfiguration configuration, string serviceName)
    {
        var export = TelemetryExport.From(name => configuration[name]);
        if (!export.Enabled) return null;
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName))
            .WithTracing(t => { t.AddAspNetCoreInstrumentation(); export.Configure(t); })
            .WithMetrics(m => { m.AddAspNetCoreInstrumentation(); export.Configure(m); })
            .WithLogging(configureBuilder: null, configureOptions: export.Configure);
        return otel;
    }

    /// <summary>
    /// For a process without one (the local host, the agent, the simulation): providers for its lifetime, or
    /// null when export is not configured. <paramref name="serverSpans"/> adds ASP.NET Core's request spans.
    /// </summary>
    public static TelemetryProviders? Start(string serviceName, bool serverSpans = false, TelemetryExport? export = null)
    {
        export ??= TelemetryExport.FromEnvironment();
        if (!export.Enabled) return null;
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName);
        var tracing = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource);
        var metrics = Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource);
        if (serverSpans)
        {
            tracing.AddAspNetCoreInstrumentation(o => o.Filter = c => !TelemetryFilters.IsWorkerChannel(c.Request.Path));
            metrics.AddAspNetCoreInstrumentation();
        }
        export.Configure(tracing);
        export.Configure(metrics);
        return new TelemetryProviders(tracing.Build()!, metrics.Build()!, export, resource);
    }
}

/// <summary>The tracer and meter providers of a process, and how its logger factory joins them.</summary>
public sealed class TelemetryProviders(TracerProvider tracer, MeterProvider meter, TelemetryExport export, ResourceBuilder resource) : IDisposable
{
    /// <summary>Adds the OpenTelemetry logger (template, allowed attributes, trace and span ids) to a logger factory.</summary>
    public void AddLogging(ILoggingBuilder logging) => logging.AddOpenTelemetry(o =>
    {
        o.SetResourceBuilder(resource);
        export.Configure(o);
    });

    /// <summary>Exports what is buffered (the process is about to exit).</summary>
    public void Flush()
    {
        tracer.ForceFlush(5000);
        meter.ForceFlush(5000);
    }

    public void Dispose()
    {
        tracer.Dispose();
        meter.Dispose();
    }
}

internal static class TelemetryFilters
{
    /// <summary>The worker's long-lived gRPC event stream is one request for the worker's whole life: not a span.</summary>
    public static bool IsWorkerChannel(Microsoft.AspNetCore.Http.PathString path) =>
        path.StartsWithSegments("/AzureFunctionsRpcMessages.FunctionRpc", StringComparison.Ordinal);
}
