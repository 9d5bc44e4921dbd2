namespace Serverless.Functions.Fraud.Services;

/// <summary>Audit actions of fraud scoring; a refusal is one <see cref="AuditOutcome.Denied"/> entry with its reason.</summary>
public static class FraudAuditActions
{
    public const string ModelPublish = "fraud.model.publish";
    public const string EvaluationPut = "fraud.evaluation.put";
    public const string ChallengerSet = "fraud.challenger.set";
    public const string Promote = "fraud.model.promote";
    public const string Rollback = "fraud.model.rollback";
    public const string EventsRefused = "fraud.events.refused";
    public const string DriftAlert = "fraud.drift.alert";
}
