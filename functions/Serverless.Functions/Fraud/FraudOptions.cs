namespace Serverless.Functions.Fraud;

/// <summary>App settings <c>Fraud__*</c> of real-time fraud scoring.</summary>
public sealed class FraudOptions
{
    /// <summary>k: the events of a card's history a model reads; every published model must read exactly this many.</summary>
    public int Steps { get; set; } = 8;

    /// <summary>Transactions one intake request may carry.</summary>
    public int MaxTransactionsPerRequest { get; set; } = 5_000;

    /// <summary>Events per queue message: one message is one micro-batch of the scorer.</summary>
    public int MaxEventsPerMessage { get; set; } = 512;

    /// <summary>Events an evaluation set may carry.</summary>
    public int MaxEvaluationEvents { get; set; } = 200_000;

    /// <summary>Bytes of a published ONNX model.</summary>
    public int MaxModelBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>Alerts a bank reads per call.</summary>
    public int MaxAlertsPerRead { get; set; } = 32;

    /// <summary>How long a read alert stays invisible before it is delivered again unless acknowledged.</summary>
    public TimeSpan AlertLease { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The gate's floor: a version is promoted (or rolled back to) only with at least this AUROC on the evaluation set.</summary>
    public double MinimumAuroc { get; set; } = 0.7;

    /// <summary>The gate's margin: a promoted version may score at most this much below the current champion.</summary>
    public double MaxAurocDrop { get; set; } = 0.01;

    /// <summary>PSI above which a feature counts as drifted (Siddiqi 2006: above 0.25 is a significant shift).</summary>
    public double DriftAlertLevel { get; set; } = 0.25;

    /// <summary>Events the drift monitor sees before it may alert.</summary>
    public int DriftMinimumEvents { get; set; } = 500;

    internal IEnumerable<string> Problems()
    {
        if (Steps is < 1 or > 64) yield return "Fraud__Steps must be within 1..64";
        if (MaxTransactionsPerRequest is < 1 or > 100_000) yield return "Fraud__MaxTransactionsPerRequest must be within 1..100000";
        if (MaxEventsPerMessage is < 1 or > 1024) yield return "Fraud__MaxEventsPerMessage must be within 1..1024 (the scorer's micro-batch)";
        if (MaxEvaluationEvents is < 100 or > 1_000_000) yield return "Fraud__MaxEvaluationEvents must be within 100..1000000";
        if (MaxModelBytes is < 1024 or > 256 * 1024 * 1024) yield return "Fraud__MaxModelBytes must be within 1 KiB..256 MiB";
        if (MaxAlertsPerRead is < 1 or > 32) yield return "Fraud__MaxAlertsPerRead must be within 1..32";
        if (AlertLease < TimeSpan.FromSeconds(1) || AlertLease > TimeSpan.FromDays(7)) yield return "Fraud__AlertLease must be within 1 s..7 days";
        if (!(MinimumAuroc is >= 0.5 and <= 1)) yield return "Fraud__MinimumAuroc must be within 0.5..1";
        if (!(MaxAurocDrop is >= 0 and <= 0.5)) yield return "Fraud__MaxAurocDrop must be within 0..0.5";
        if (!(DriftAlertLevel is > 0 and <= 10)) yield return "Fraud__DriftAlertLevel must be within (0, 10]";
        if (DriftMinimumEvents is < 1) yield return "Fraud__DriftMinimumEvents must be at least 1";
    }
}
