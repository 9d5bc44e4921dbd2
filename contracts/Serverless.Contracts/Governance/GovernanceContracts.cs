namespace Serverless.Contracts.Governance;

/// <summary>The first break the audit verifier found: its kind (e.g. EntryModified), the entry's sequence number and why.</summary>
public sealed record AuditBreakInfo(string Kind, long Sequence, string Message);

/// <summary>Answer of <c>GET api/audit/verify</c>: the chain, its signed checkpoints and the external anchors checked.</summary>
public sealed record AuditVerification(bool Intact, long EntriesChecked, int CheckpointsChecked, long LastSequence, AuditBreakInfo? FirstBreak, string Summary);

/// <summary>Answer of <c>POST api/audit/export</c>: the last sequence number now in the audit container.</summary>
public sealed record AuditExportReceipt(long ExportedThrough);

/// <summary>The governance routes under <c>/api</c>.</summary>
public static class GovernanceRoutes
{
    public const string AuditVerify = "audit/verify";
    public const string AuditEntries = "audit/entries";
    public const string AuditExport = "audit/export";
    public const string Compliance = "compliance";

    /// <summary>The path a client sends to, for a route above.</summary>
    public static string Path(string route) => "api/" + route;
}
