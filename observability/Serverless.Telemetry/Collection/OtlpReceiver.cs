using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Telemetry.Otlp;

namespace Serverless.Telemetry.Collection;

/// <summary>
/// An OTLP/HTTP receiver on loopback (protobuf bodies at /v1/traces, /v1/logs and /v1/metrics): what the
/// simulation reads a round's critical path from, and what the tests assert the export against. Point a
/// process at it with <c>OTEL_EXPORTER_OTLP_ENDPOINT={Endpoint}</c> and <c>OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf</c>.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    /// <summary>An export request larger than this is refused (413): the SDK's batches are far smaller.</summary>
    private const int MaxRequestBytes = 16 << 20;

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<CollectedSpan> _spans = new();
    private readonly ConcurrentQueue<CollectedLog> _logs = new();
    private readonly ConcurrentQueue<CollectedMetricPoint> _metrics = new();
    private readonly ConcurrentQueue<string> _strings = new();

    private OtlpReceiver(WebApplication app) => _app = app;

    public Uri Endpoint { get; private set; } = null!;

    public IReadOnlyCollection<CollectedSpan> Spans => _spans;
    public IReadOnlyCollection<CollectedLog> Logs => _logs;
    public IReadOnlyCollection<CollectedMetricPoint> Metrics => _metrics;

    /// <summary>Every string the exports carried (names, keys, values, bodies, resource attributes): what a leak scan reads.</summary>
    public IReadOnlyCollection<string> Strings => _strings;

    /// <summary>The environment a child process needs to export here.</summary>
    public IReadOnlyDictionary<string, string> ExporterEnvironment => new Dictionary<string, string>
    {
        [TelemetryExport.OtlpEndpointSetting] = Endpoint.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        // Short batches, so a round's spans arrive while the simulation is still running.
        ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        ["OTEL_BLRP_SCHEDULE_DELAY"] = "200",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "1000",
    };

    public static async Task<OtlpReceiver> StartAsync(CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Limits.MaxRequestBodySize = MaxRequestBytes;
        });
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.MapPost("/v1/traces", (HttpRequest r) => receiver.ReceiveAsync(r, ExportTraceServiceRequest.Parser, receiver.Add));
        app.MapPost("/v1/logs", (HttpRequest r) => receiver.ReceiveAsync(r, ExportLogsServiceRequest.Parser, receiver.Add));
        app.MapPost("/v1/metrics", (HttpRequest r) => receiver.ReceiveAsync(r, ExportMetricsServiceRequest.Parser, receiver.Add));
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Endpoint = new Uri(address.TrimEnd('/') + "/");
        return receiver;
    }

    private async Task<IResult> ReceiveAsync<T>(HttpRequest request, MessageParser<T> parser, Action<T> add) where T : IMessage<T>
    {
        if (request.ContentType?.StartsWith("application/x-protobuf", StringComparison.OrdinalIgnoreCase) != true)
            return Results.Problem("OTLP/HTTP here takes application/x-protobuf", statusCode: StatusCodes.Status415UnsupportedMediaType);
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        T message;
        try { message = parser.ParseFrom(body.GetBuffer().AsSpan(0, (int)body.Length)); }
        catch (InvalidProtocolBufferException) { return Results.Problem("the body is not an OTLP export request", statusCode: StatusCodes.Status400BadRequest); }
        add(message);
        // An empty ExportXServiceResponse: no partial success to report.
        return Results.Bytes([], "application/x-protobuf");
    }

    private void Add(ExportTraceServiceRequest request)
    {
        foreach (var rs in request.ResourceSpans)
        {
            var service = ServiceOf(rs.Resource);
            foreach (var ss in rs.ScopeSpans)
            {
                Keep(ss.Scope?.Name);
                foreach (var s in ss.Spans)
                {
                    Keep(s.Name);
                    Keep(s.Status?.Message);
                    var events = s.Events.Select(e => { Keep(e.Name); return new CollectedEvent(e.Name, Attributes(e.Attributes)); }).ToArray();
                    foreach (var l in s.Links) Attributes(l.Attributes);
                    _spans.Enqueue(new CollectedSpan(service, ss.Scope?.Name ?? "", Hex(s.TraceId), Hex(s.SpanId), s.ParentSpanId.IsEmpty ? null : Hex(s.ParentSpanId),
                        s.Name, s.Kind, Time(s.StartTimeUnixNano), Time(s.EndTimeUnixNano), Attributes(s.Attributes), events, s.Status?.Code ?? 0));
                }
            }
        }
    }

    private void Add(ExportLogsServiceRequest request)
    {
        foreach (var rl in request.ResourceLogs)
        {
            var service = ServiceOf(rl.Resource);
            foreach (var sl in rl.ScopeLogs)
            {
                foreach (var r in sl.LogRecords)
                {
                    var body = r.Body is null ? "" : Text(r.Body);
                    _logs.Enqueue(new CollectedLog(service, sl.Scope?.Name ?? "", r.SeverityNumber, body, Attributes(r.Attributes),
                        r.TraceId.IsEmpty ? null : Hex(r.TraceId), r.SpanId.IsEmpty ? null : Hex(r.SpanId)));
                }
            }
        }
    }

    private void Add(ExportMetricsServiceRequest request)
    {
        foreach (var rm in request.ResourceMetrics)
        {
            var service = ServiceOf(rm.Resource);
            foreach (var sm in rm.ScopeMetrics)
            {
                foreach (var m in sm.Metrics)
                {
                    Keep(m.Name);
                    Keep(m.Description);
                    IEnumerable<(IReadOnlyDictionary<string, string>, double, ulong)> points = m.DataCase switch
                    {
                        Metric.DataOneofCase.Sum => m.Sum.DataPoints.Select(p => (Attributes(p.Attributes), Number(p), 1UL)),
                        Metric.DataOneofCase.Gauge => m.Gauge.DataPoints.Select(p => (Attributes(p.Attributes), Number(p), 1UL)),
                        Metric.DataOneofCase.Histogram => m.Histogram.DataPoints.Select(p => (Attributes(p.Attributes), p.Sum, p.Count)),
                        _ => [],
                    };
                    foreach (var (attributes, value, count) in points)
                        _metrics.Enqueue(new CollectedMetricPoint(service, m.Name, m.Unit, attributes, value, count));
                }
            }
        }
    }

    private static double Number(NumberDataPoint p) => p.ValueCase == NumberDataPoint.ValueOneofCase.AsInt ? p.AsInt : p.AsDouble;

    private string ServiceOf(Resource? resource)
    {
        var attributes = resource is null ? new Dictionary<string, string>() : Attributes(resource.Attributes);
        return attributes.TryGetValue("service.name", out var name) ? name : "";
    }

    private IReadOnlyDictionary<string, string> Attributes(IEnumerable<KeyValue> attributes)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var kv in attributes)
        {
            Keep(kv.Key);
            map[kv.Key] = kv.Value is null ? "" : Text(kv.Value);
        }
        return map;
    }

    private string Text(AnyValue value)
    {
        var text = value.ValueCase switch
        {
            AnyValue.ValueOneofCase.StringValue => value.StringValue,
            AnyValue.ValueOneofCase.BoolValue => value.BoolValue ? "true" : "false",
            AnyValue.ValueOneofCase.IntValue => value.IntValue.ToString(CultureInfo.InvariantCulture),
            AnyValue.ValueOneofCase.DoubleValue => value.DoubleValue.ToString("R", CultureInfo.InvariantCulture),
            AnyValue.ValueOneofCase.ArrayValue => string.Join(",", value.ArrayValue.Values.Select(Text)),
            AnyValue.ValueOneofCase.KvlistValue => string.Join(",", value.KvlistValue.Values.Select(kv => kv.Key + "=" + (kv.Value is null ? "" : Text(kv.Value)))),
            AnyValue.ValueOneofCase.BytesValue => Convert.ToHexStringLower(value.BytesValue.Span),
            _ => "",
        };
        Keep(text);
        return text;
    }

    private void Keep(string? s)
    {
        if (!string.IsNullOrEmpty(s)) _strings.Enqueue(s);
    }

    private static string Hex(ByteString b) => Convert.ToHexStringLower(b.Span);

    private static DateTime Time(ulong unixNanos) => DateTime.UnixEpoch.AddTicks((long)(unixNanos / 100));

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
