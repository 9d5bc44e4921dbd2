namespace Serverless.Security.Audit;

/// <summary>
/// The tamper-evident audit trail every security-relevant action writes to: authentication
/// failures, denied access, key use, round start / finish, model promotion, role changes, data
/// export. Entries are hash-chained and periodically anchored by checkpoints signed in the vault.
/// </summary>
public interface IAuditLog
{
    /// <summary>Appends one entry durably (on disk when the task completes) and returns it with its sequence and hash.</summary>
    Task<AuditEntry> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default);

    /// <summary>Entries from <paramref name="fromSequence"/> on, in sequence order.</summary>
    IAsyncEnumerable<AuditEntry> ReadAsync(long fromSequence = 1, CancellationToken cancellationToken = default);

    /// <summary>Signs the current head (sequence and hash) through the key vault; null when the log is empty.</summary>
    Task<AuditCheckpoint?> CheckpointAsync(CancellationToken cancellationToken = default);

    /// <summary>Every stored checkpoint, oldest first.</summary>
    IAsyncEnumerable<AuditCheckpoint> ReadCheckpointsAsync(CancellationToken cancellationToken = default);
}

public enum AuditOutcome
{
    Success = 1,
    Failure = 2,
    Denied = 3,
}

/// <summary>What happened: who did what to which resource, and how it ended.</summary>
public sealed record AuditEvent(string Actor, string Action, string Resource, AuditOutcome Outcome, string? RequestId = null, string? Detail = null);

/// <summary>A stored entry. <see cref="Hash"/> = SHA-256 over the canonical encoding, which includes <see cref="PreviousHash"/>.</summary>
public sealed record AuditEntry(
    long Sequence, DateTimeOffset Timestamp, string Actor, string Action, string Resource, AuditOutcome Outcome,
    string RequestId, string Detail, byte[] PreviousHash, byte[] Hash);

/// <summary>A signed statement "the chain had <see cref="HeadHash"/> at <see cref="Sequence"/>".</summary>
public sealed record AuditCheckpoint(long Sequence, byte[] HeadHash, DateTimeOffset Timestamp, KeySignature Signature);

/// <summary>Action names used across the platform.</summary>
public static class AuditActions
{
    public const string AuthenticationFailed = "auth.failed";
    public const string AccessDenied = "access.denied";
    public const string KeyCreate = "key.create";
    public const string KeyRotate = "key.rotate";
    public const string KeyDisable = "key.disable";
    public const string KeyUse = "key.use";
    public const string RoundStart = "round.start";
    public const string RoundFinish = "round.finish";
    public const string ModelPromote = "model.promote";
    public const string RoleChange = "role.change";
    public const string DataExport = "data.export";
    public const string AuditExport = "audit.export";
    public const string AuditVerify = "audit.verify";
}
