namespace Serverless.Telemetry.Collection;

/// <summary>A span as an OTLP receiver decoded it: ids in lower-case hex, times in UTC.</summary>
public sealed record CollectedSpan(
    string Service, string Scope, string TraceId, string SpanId, string? ParentSpanId, string Name, int Kind,
    DateTime Start, DateTime End, IReadOnlyDictionary<string, string> Attributes, IReadOnlyList<CollectedEvent> Events, int StatusCode)
{
    public TimeSpan Duration => End - Start;

    public string? Attribute(string name) => Attributes.TryGetValue(name, out var v) ? v : null;
}

public sealed record CollectedEvent(string Name, IReadOnlyDictionary<string, string> Attributes);

/// <summary>A log record: its template (body), attributes and the span it was written in.</summary>
public sealed record CollectedLog(string Service, string Category, int Severity, string Body, IReadOnlyDictionary<string, string> Attributes, string? TraceId, string? SpanId);

/// <summary>One data point of a metric (a sum's value, or a histogram's count and sum).</summary>
public sealed record CollectedMetricPoint(string Service, string Metric, string Unit, IReadOnlyDictionary<string, string> Attributes, double Value, ulong Count);
