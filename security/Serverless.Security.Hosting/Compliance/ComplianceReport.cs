using Serverless.Security.Envelope;

namespace Serverless.Security.Compliance;

/// <summary>One rule of the report and what was found.</summary>
public sealed record ComplianceCheck(string Rule, bool Passed, string Finding);

/// <summary>The compliance report: each rule with its finding; compliant when all pass.</summary>
public sealed record ComplianceReport(DateTimeOffset GeneratedAt, bool Compliant, IReadOnlyList<ComplianceCheck> Checks, IReadOnlyDictionary<string, string[]> RoleGrants);

/// <summary>What the report inspects and its thresholds.</summary>
public sealed record ComplianceOptions
{
    /// <summary>Keys whose current version must be younger than <see cref="MaxKeyAge"/>.</summary>
    public IReadOnlyList<string> Keys { get; init; } = ["checkpoints-kek", "token-signing", "audit-signing"];

    public TimeSpan MaxKeyAge { get; init; } = TimeSpan.FromDays(90);

    /// <summary>How many objects of the encrypted store are sampled for envelope headers.</summary>
    public int EncryptionSample { get; init; } = 100;

    public string AuditSigningKeyName { get; init; } = "audit-signing";
}

/// <summary>
/// Checks the rules the governance layer promises (seed paper 1: "encryption at rest", "logging
/// enabled", key management, least privilege): every sampled checkpoint is an authentic-looking
/// envelope; every key was rotated within the allowed age; the audit chain verifies against its
/// signed checkpoints; the role table keeps key and role management to admins and gives no role everything.
/// </summary>
public sealed class ComplianceReporter(IKeyVault vault, IAuditLog audit, RolePermissionTable roles, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public async Task<ComplianceReport> BuildAsync(IBlobStore encryptedStoreInner, ComplianceOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ComplianceOptions();
        var now = _time.GetUtcNow();
        var checks = new List<ComplianceCheck>
        {
            await EncryptionAtRestAsync(encryptedStoreInner, options, cancellationToken),
        };
        foreach (var key in options.Keys) checks.Add(await KeyAgeAsync(key, options.MaxKeyAge, now, cancellationToken));

        var report = await AuditVerifier.VerifyAsync(audit, vault, options.AuditSigningKeyName, cancellationToken);
        checks.Add(new ComplianceCheck("audit chain intact and anchored by signed checkpoints",
            report.Intact && (report.EntriesChecked == 0 || report.CheckpointsChecked > 0), report.ToText()));
        checks.Add(new ComplianceCheck("audit logging enabled", report.EntriesChecked > 0, $"{report.EntriesChecked} entries"));

        var everything = roles.Roles.Values.Where(r => r.Permissions.Count == roles.Permissions.Count).Select(r => r.Name).ToList();
        var keyManagers = roles.Roles.Values.Where(r => r.Permissions.Contains(Permissions.KeysManage) || r.Permissions.Contains(Permissions.RolesManage)).Select(r => r.Name).ToList();
        checks.Add(new ComplianceCheck("least privilege: no role holds every permission", everything.Count == 0,
            everything.Count == 0 ? "none" : string.Join(", ", everything)));
        checks.Add(new ComplianceCheck("key and role management restricted to admin", keyManagers.All(r => r == Roles.Admin), string.Join(", ", keyManagers)));

        var grants = roles.Roles.Values.OrderBy(r => r.Name, StringComparer.Ordinal)
            .ToDictionary(r => r.Name, r => r.Permissions.Order(StringComparer.Ordinal).ToArray());
        return new ComplianceReport(now, checks.All(c => c.Passed), checks, grants);
    }

    private static async Task<ComplianceCheck> EncryptionAtRestAsync(IBlobStore store, ComplianceOptions options, CancellationToken cancellationToken)
    {
        int sampled = 0, encrypted = 0;
        var offenders = new List<string>();
        await foreach (var blob in store.ListAsync("", cancellationToken))
        {
            if (sampled++ >= options.EncryptionSample) break;
            await using var download = await store.GetAsync(blob.Name, cancellationToken);
            if (download is null) continue;
            try
            {
                await EnvelopeEncryptor.ReadInfoAsync(download.Content, cancellationToken);
                encrypted++;
            }
            catch (System.Security.Cryptography.CryptographicException)
            {
                if (offenders.Count < 5) offenders.Add(blob.Name);
            }
        }
        sampled = Math.Min(sampled, options.EncryptionSample);
        return new ComplianceCheck("encryption at rest (envelope-encrypted checkpoints)", encrypted == sampled,
            $"{encrypted}/{sampled} sampled objects are envelopes" + (offenders.Count > 0 ? "; not encrypted: " + string.Join(", ", offenders) : ""));
    }

    private async Task<ComplianceCheck> KeyAgeAsync(string name, TimeSpan maxAge, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var current = await vault.GetCurrentVersionAsync(name, cancellationToken);
        if (current is null) return new ComplianceCheck($"key '{name}' rotated within {maxAge.TotalDays:0} days", false, "no enabled version");
        var age = now - current.CreatedAt;
        return new ComplianceCheck($"key '{name}' rotated within {maxAge.TotalDays:0} days", age <= maxAge,
            $"current version {current.Id.Version} is {age.TotalDays:0.0} days old");
    }
}
