using System.Diagnostics.Metrics;

namespace Serverless.Durable.Core;

/// <summary>The engine's instruments (meter <c>Serverless.Durable</c>), tagged by orchestration name.</summary>
internal sealed class DurableMetrics : IDisposable
{
    public const string MeterName = "Serverless.Durable";

    private readonly Meter _meter;

    public DurableMetrics(IMeterFactory? meterFactory = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Started = _meter.CreateCounter<long>("durable.orchestrations.started", description: "Orchestration executions started");
        Completed = _meter.CreateCounter<long>("durable.orchestrations.completed", description: "Orchestrations completed");
        Failed = _meter.CreateCounter<long>("durable.orchestrations.failed", description: "Orchestrations failed");
        Terminated = _meter.CreateCounter<long>("durable.orchestrations.terminated", description: "Orchestrations terminated");
        Duration = _meter.CreateHistogram<double>("durable.orchestration.duration", unit: "ms", description: "Start to finish of an execution");
        Episodes = _meter.CreateCounter<long>("durable.episodes", description: "Orchestration episodes committed");
        Replays = _meter.CreateHistogram<long>("durable.episode.replayed_events", description: "History events replayed per episode");
        Activities = _meter.CreateCounter<long>("durable.activities.completed", description: "Activities completed");
        ActivityFailures = _meter.CreateCounter<long>("durable.activities.failed", description: "Activities that threw");
    }

    public Counter<long> Started { get; }
    public Counter<long> Completed { get; }
    public Counter<long> Failed { get; }
    public Counter<long> Terminated { get; }
    public Histogram<double> Duration { get; }
    public Counter<long> Episodes { get; }
    public Histogram<long> Replays { get; }
    public Counter<long> Activities { get; }
    public Counter<long> ActivityFailures { get; }

    public void Dispose() => _meter.Dispose();
}
