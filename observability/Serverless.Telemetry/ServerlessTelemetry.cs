using System.Diagnostics.Metrics;

namespace Serverless.Telemetry;

/// <summary>
/// The product's own spans and instruments. Every tag they carry is a name from <see cref="AttributeAllowList"/>;
/// values are ids, counts, durations and outcomes, never a record, a feature, a key, a token or a card number.
/// </summary>
public static class ServerlessTelemetry
{
    /// <summary>The ActivitySource and Meter name of the product's own spans and metrics.</summary>
    public const string Name = "Serverless";

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    /// <summary>Rounds that ended, tagged with serverless.outcome (completed, failed).</summary>
    public static readonly Counter<long> Rounds = Meter.CreateCounter<long>("serverless.rounds", "{round}", "Federated rounds that ended");

    /// <summary>How long each phase of a round took, tagged with serverless.phase.</summary>
    public static readonly Histogram<double> PhaseDuration = Meter.CreateHistogram<double>("serverless.round.phase.duration", "s", "Duration of a round's phase");

    /// <summary>Clients a round counted as dropped.</summary>
    public static readonly Counter<long> Dropouts = Meter.CreateCounter<long>("serverless.round.dropouts", "{client}", "Clients that dropped out of a round");

    /// <summary>The privacy budget a round spent (epsilon, at the federation's delta).</summary>
    public static readonly Histogram<double> EpsilonSpent = Meter.CreateHistogram<double>("serverless.dp.epsilon_spent", "{epsilon}", "Differential-privacy epsilon spent per round");

    /// <summary>Secure-aggregation bytes received from clients.</summary>
    public static readonly Counter<long> SecAggBytes = Meter.CreateCounter<long>("serverless.secagg.bytes", "By", "Secure-aggregation bytes received");

    public static readonly Counter<long> InferenceBatches = Meter.CreateCounter<long>("serverless.inference.batches", "{batch}", "Encrypted inference batches evaluated");
    public static readonly Counter<long> InferenceRecords = Meter.CreateCounter<long>("serverless.inference.records", "{record}", "Encrypted records evaluated");

    /// <summary>How long a queue message waited before a trigger took it, tagged with serverless.queue.</summary>
    public static readonly Histogram<double> QueueMessageAge = Meter.CreateHistogram<double>("serverless.queue.message.age", "s", "Age of a queue message when a trigger takes it");

    /// <summary>Messages on a trigger's queue when it last looked, tagged with serverless.queue.</summary>
    public static readonly Histogram<long> QueueDepth = Meter.CreateHistogram<long>("serverless.queue.depth", "{message}", "Messages waiting on a trigger's queue");

    /// <summary>Function invocations as the host ran them, tagged with faas.name, faas.trigger and serverless.outcome.</summary>
    public static readonly Histogram<double> FunctionDuration = Meter.CreateHistogram<double>("serverless.function.duration", "s", "Duration of a function invocation");

    public static readonly Counter<long> FunctionFailures = Meter.CreateCounter<long>("serverless.function.failures", "{invocation}", "Function invocations that failed");
}
