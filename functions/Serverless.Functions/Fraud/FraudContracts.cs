using System.Text.Json.Serialization;
using Serverless.Fraud.Data;
using Serverless.Fraud.Scoring;

namespace Serverless.Functions.Fraud;

/// <summary>
/// One transaction as a bank's gateway posts it. The card number travels only in this request: the
/// intake tokenizes it before anything is queued, stored or logged, and <see cref="ToString"/> leaves it out.
/// Nothing here is <c>required</c>, so one transaction with a missing field is refused by its index instead of
/// failing the whole request in the deserializer.
/// </summary>
public sealed record TransactionSubmission : TransactionDetails
{
    public string? TransactionId { get; init; }
    public string? CardNumber { get; init; }

    /// <summary>The label, only in an evaluation set (1 = fraud); ignored at intake.</summary>
    public int? Fraud { get; init; }

    public override string ToString() => $"TransactionSubmission({TransactionId}, card hidden)";
}

/// <summary>POST body of <c>fraud/{tenant}/transactions</c> and of the evaluation set.</summary>
public sealed record TransactionBatch(IReadOnlyList<TransactionSubmission>? Transactions);

/// <summary>A transaction the intake or the scorer refused: its index in the request or message and why (never a value).</summary>
public sealed record TransactionRefusal(int Index, string? TransactionId, string Reason);

/// <summary>202 of an intake: how many events were queued in how many messages, and which were refused (and poisoned, with their reasons).</summary>
public sealed record IntakeReceipt(string Tenant, int Accepted, int Messages, IReadOnlyList<TransactionRefusal> Refused);

/// <summary>
/// A message on <c>fraud-transactions</c>: one intake request's tokenized events, in a blob (a claim check:
/// a request's events stay one unit in order, and a queue message is at most 64 KiB), scored in micro-batches.
/// </summary>
/// <param name="TraceParent">The intake request's trace context (<see cref="Serverless.Telemetry.MessageTraceContext"/>): scoring joins its trace.</param>
public sealed record FraudEventsMessage(string? Tenant, string? Blob, int Events, string? Sha256, string? TraceParent = null);

/// <summary>An alert as the bank reads it: <see cref="AckId"/> acknowledges it (until then it comes back after the lease).</summary>
public sealed record AlertDelivery(string AckId, int DeliveryCount, FraudAlert Alert);

/// <summary>POST body of <c>fraud/{tenant}/alerts/ack</c>.</summary>
public sealed record AlertAcks(IReadOnlyList<string>? AckIds);

/// <summary>A published fraud model version (the ONNX file is in the envelope-encrypted checkpoints container).</summary>
public sealed record FraudModelInfo(string Version, int Steps, string Architecture, int Parameters, string Sha256, string PublishedBy, DateTimeOffset PublishedAt);

/// <summary>Which versions serve: the champion decides alerts; the challenger (if any) gets the cards whose bucket is below its fraction, and both score every event.</summary>
public sealed record FraudDeployment(string? Champion, double Threshold, string? Challenger, double ChallengerFraction, string Experiment,
    IReadOnlyList<string> FormerChampions, long Revision)
{
    public static FraudDeployment Empty { get; } = new(null, 0.5, null, 0, "canary", [], 0);
}

/// <summary>PUT body of <c>fraud/deployment/challenger</c>: null Version removes the challenger.</summary>
public sealed record ChallengerRequest(string? Version, double Fraction, string? Experiment);

/// <summary>POST body of a promotion: the alert threshold the new champion serves with (null keeps the current one).</summary>
public sealed record PromotionRequest(double? Threshold);

/// <summary>What the metric gate measured on the evaluation set, and its verdict.</summary>
public sealed record GateResult(string Candidate, double CandidateAuroc, string? Current, double? CurrentAuroc, double MinimumAuroc, double MaxDrop, int Events, bool Passed, string Reason);

/// <summary>The evaluation set the gate and the drift monitor read (tokenized, labelled), as stored.</summary>
public sealed record FraudEvaluationSet(IReadOnlyList<CardEvent> Events, IReadOnlyList<int> Labels, string PutBy, DateTimeOffset PutAt);

/// <summary>JSON for every fraud contract: enums as names (numbers accepted), camelCase, card tokens as ct_ + 32 hex.</summary>
public static class FraudJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerOptions.Web) { Converters = { new JsonStringEnumConverter() } };
}
