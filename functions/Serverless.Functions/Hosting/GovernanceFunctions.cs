using Serverless.Security.Compliance;
using Serverless.Security.Hosting;
using Serverless.Security.Keys;
using Serverless.Contracts.Governance;

namespace Serverless.Functions.Hosting;

/// <summary>
/// The governance endpoints: auditors verify and read the trail, admins rotate keys, a timer anchors
/// and exports the trail. Every function declares its permission.
/// </summary>
public sealed class GovernanceFunctions(IAuditLog audit, IKeyVault vault, SecurityOptions options, IBlobStoreProvider blobs, CheckpointStore checkpoints,
    RolePermissionTable roles, VaultSigningKeys signingKeys, TimeProvider time, IEnumerable<IComplianceCheckSource> moduleChecks)
{
    [Function("AuditVerify")]
    [RequirePermission(Permissions.AuditVerify)]
    public async Task<IResult> Verify([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = GovernanceRoutes.AuditVerify)] HttpRequest request, CancellationToken cancellationToken)
    {
        // Compared with the heads anchored outside the log too: a deleted tail or a rewritten chain with its checkpoints dropped is a break.
        var anchors = await AuditAnchors.ReadAsync(blobs.GetContainer(options.AuditAnchorContainer), cancellationToken);
        var report = await AuditVerifier.VerifyAsync(audit, vault, anchors, options.AuditSigningKeyName, cancellationToken);
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.AuditVerify, "audit", report.Intact ? AuditOutcome.Success : AuditOutcome.Failure,
            request.HttpContext.TraceIdentifier, report.ToText()), cancellationToken);
        return Results.Ok(new AuditVerification(report.Intact, report.EntriesChecked, report.CheckpointsChecked, report.LastSequence,
            report.FirstBreak is { } b ? new AuditBreakInfo(b.Kind.ToString(), b.Sequence, b.Message) : null, report.ToText()));
    }

    [Function("AuditEntries")]
    [RequirePermission(Permissions.AuditRead)]
    public async Task<IResult> Entries([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = GovernanceRoutes.AuditEntries)] HttpRequest request, CancellationToken cancellationToken)
    {
        var from = long.TryParse(request.Query["from"], out var f) && f >= 1 ? f : 1;
        var limit = int.TryParse(request.Query["limit"], out var l) ? l : 100;
        if (limit is < 1 or > 1000) return Results.Problem(statusCode: 400, title: "Invalid limit", detail: "limit must be between 1 and 1000.");
        var entries = new List<object>(limit);
        await foreach (var e in audit.ReadAsync(from, cancellationToken))
        {
            entries.Add(new
            {
                e.Sequence, e.Timestamp, e.Actor, e.Action, e.Resource, Outcome = e.Outcome.ToString(), e.RequestId, e.Detail,
                PreviousHash = Convert.ToHexStringLower(e.PreviousHash), Hash = Convert.ToHexStringLower(e.Hash),
            });
            if (entries.Count == limit) break;
        }
        return Results.Ok(entries);
    }

    [Function("AuditExport")]
    [RequirePermission(Permissions.AuditVerify)]
    public async Task<IResult> Export([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = GovernanceRoutes.AuditExport)] HttpRequest request, CancellationToken cancellationToken)
    {
        var last = await AuditExporter.ExportAsync(audit, blobs.GetContainer(options.AuditContainer), cancellationToken: cancellationToken);
        await AuditAnchors.PublishAsync(audit, blobs.GetContainer(options.AuditAnchorContainer), cancellationToken);
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.AuditExport, options.AuditContainer, AuditOutcome.Success,
            request.HttpContext.TraceIdentifier, $"exported through {last}"), cancellationToken);
        return Results.Ok(new AuditExportReceipt(last));
    }

    [Function("ComplianceReport")]
    [RequirePermission(Permissions.ComplianceRead)]
    public async Task<IResult> Compliance([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = GovernanceRoutes.Compliance)] HttpRequest request, CancellationToken cancellationToken)
    {
        var report = await new ComplianceReporter(vault, audit, roles, time).BuildAsync(checkpoints.Raw,
            new ComplianceOptions { Keys = [options.CheckpointKeyName, options.PseudonymizationKeyName, options.Tokens.SigningKeyName, options.AuditSigningKeyName], AuditSigningKeyName = options.AuditSigningKeyName },
            cancellationToken);
        var extra = new List<ComplianceCheck>();
        foreach (var source in moduleChecks) extra.AddRange(await source.ChecksAsync(cancellationToken));
        // An IResult, not the report itself: with the ASP.NET Core integration only an IResult (or IActionResult)
        // is written to the response; a plain return value was dropped and the caller got an empty 200.
        return Results.Ok(report with { Checks = [.. report.Checks, .. extra], Compliant = report.Compliant && extra.TrueForAll(c => c.Passed) });
    }

    [Function("KeyRotate")]
    [RequirePermission(Permissions.KeysManage)]
    public async Task<IResult> Rotate([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "keys/{name}/rotate")] HttpRequest request, string name, CancellationToken cancellationToken)
    {
        KeyVersionInfo rotated;
        try { rotated = await vault.RotateKeyAsync(name, cancellationToken); }
        catch (KeyNotFoundException) { return Results.Problem(statusCode: 404, title: "Unknown key", detail: $"Key '{name}' does not exist."); }
        catch (ArgumentException e) { return Results.Problem(statusCode: 400, title: "Invalid key name", detail: e.Message); }
        var rewrapped = name == options.CheckpointKeyName ? await checkpoints.Store.RewrapAllAsync(cancellationToken: cancellationToken) : 0;
        if (name == options.Tokens.SigningKeyName) await signingKeys.RefreshAsync(cancellationToken); // tokens with the new kid validate at once
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.KeyRotate, $"key/{name}", AuditOutcome.Success,
            request.HttpContext.TraceIdentifier, $"new version {rotated.Id.Version}; {rewrapped} objects re-wrapped"), cancellationToken);
        return Results.Ok(new { Key = rotated.Id.ToString(), rotated.CreatedAt, Rewrapped = rewrapped });
    }

    /// <summary>
    /// Disables one version of a key (a compromised or retired token-signing key, say). The current
    /// version cannot be disabled: rotate first. Disabling a token-signing version refreshes the
    /// validation keys at once, so tokens it signed stop validating in this process immediately (other
    /// instances within <see cref="VaultSigningKeys.MaxAge"/>).
    /// </summary>
    [Function("KeyDisable")]
    [RequirePermission(Permissions.KeysManage)]
    public async Task<IResult> Disable([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "keys/{name}/versions/{version}/disable")] HttpRequest request, string name, string version,
        CancellationToken cancellationToken)
    {
        var id = new KeyId(name, version);
        KeyVersionInfo? current;
        try
        {
            current = await vault.GetCurrentVersionAsync(name, cancellationToken);
            if (current is null) return Results.Problem(statusCode: 404, title: "Unknown key", detail: $"Key '{name}' does not exist.");
            if (current.Id == id)
                return Results.Problem(statusCode: 409, title: "Current version", detail: $"'{id}' is the current version of '{name}'; rotate the key first, then disable this version.");
            if (!(await vault.ListVersionsAsync(name, cancellationToken)).Any(v => v.Id == id))
                return Results.Problem(statusCode: 404, title: "Unknown key version", detail: $"Key '{name}' has no version '{version}'.");
            await vault.DisableVersionAsync(id, cancellationToken);
        }
        catch (KeyNotFoundException) { return Results.Problem(statusCode: 404, title: "Unknown key", detail: $"Key '{name}' does not exist."); }
        catch (ArgumentException e) { return Results.Problem(statusCode: 400, title: "Invalid key name", detail: e.Message); }
        if (name == options.Tokens.SigningKeyName) await signingKeys.RefreshAsync(cancellationToken); // tokens it signed stop validating at once
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.KeyDisable, $"key/{name}", AuditOutcome.Success,
            request.HttpContext.TraceIdentifier, $"version {version} disabled"), cancellationToken);
        return Results.Ok(new { Key = id.ToString(), Enabled = false });
    }

    [Function("RoleTable")]
    [RequirePermission(Permissions.RolesManage)]
    public IResult RoleTable([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "roles")] HttpRequest request) =>
        Results.Ok(roles.Roles.Values.OrderBy(r => r.Name, StringComparer.Ordinal)
            .Select(r => new { r.Name, r.TenantScoped, Permissions = r.Permissions.Order(StringComparer.Ordinal).ToArray() }));

    /// <summary>Every five minutes: sign the head of the trail, anchor the signed heads outside the log, and copy new entries to the blob store.</summary>
    [Function("AuditCheckpoint")]
    public async Task Checkpoint([TimerTrigger("0 */5 * * * *")] TimerInfo timer, CancellationToken cancellationToken)
    {
        await audit.CheckpointAsync(cancellationToken);
        await AuditAnchors.PublishAsync(audit, blobs.GetContainer(options.AuditAnchorContainer), cancellationToken);
        await AuditExporter.ExportAsync(audit, blobs.GetContainer(options.AuditContainer), cancellationToken: cancellationToken);
    }

    private static string Actor(HttpRequest request) => request.HttpContext.User.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
}
