using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using static Serverless.Functions.Federations.Services.FederationHttp;

namespace Serverless.Functions.Federations;

/// <summary>Model versions: list, ONNX export (role-checked, audited), promote, roll back.</summary>
public sealed class ModelFunctions(FederationStore store, IAuditLog audit)
{
    private const string Fed = ResourceRef.Federation;

    [Function("ListModelVersions")]
    [RequirePermission(Permissions.ModelRead, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> List([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Models)] HttpRequest request, string federation, CancellationToken ct) =>
        await store.TryGetStateAsync(federation, ct) is { } state ? Json(ToList(state)) : NotFound($"Federation '{federation}' does not exist.");

    [Function("DownloadModelOnnx")]
    [RequirePermission(Permissions.ModelExport, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Onnx([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.ModelOnnx)] HttpRequest request, string federation, string version,
        FunctionContext context, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(federation, ct);
        if (state is null) return NotFound($"Federation '{federation}' does not exist.");
        if (!state.Versions.Any(v => v.Version == version)) return NotFound($"Federation '{federation}' has no model version '{version}'.");
        var onnx = await store.GetOnnxAsync(federation, version, ct);
        if (onnx is null) return NotFound($"Version '{version}' has no ONNX export.");
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.DataExport, $"federation/{federation}/model/{version}", AuditOutcome.Success,
            context.InvocationId, $"ONNX export, {onnx.Length} bytes"), ct);
        return Results.File(onnx, "application/octet-stream", $"{federation}-{version}.onnx");
    }

    [Function("PromoteModelVersion")]
    [RequirePermission(Permissions.ModelPromote, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Promote([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Promote)] HttpRequest request, string federation, string version,
        FunctionContext context, CancellationToken ct)
    {
        var body = await OptionalBodyAsync(request, ct);
        if (body.Problem is not null) return body.Problem;
        return await ChangeAsync(request, context, federation, version, body.Value?.Reason, rollback: false, ct);
    }

    [Function("RollbackModelVersion")]
    [RequirePermission(Permissions.ModelPromote, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Rollback([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Rollback)] HttpRequest request, string federation,
        FunctionContext context, CancellationToken ct)
    {
        var body = await OptionalBodyAsync(request, ct);
        if (body.Problem is not null) return body.Problem;
        return await ChangeAsync(request, context, federation, body.Value?.ToVersion, body.Value?.Reason, rollback: true, ct);
    }

    private static async Task<(ModelChangeRequest? Value, IResult? Problem)> OptionalBodyAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength is not > 0 && request.Headers.ContentType.Count == 0) return (null, null);
        var body = await ReadAsync<ModelChangeRequest>(request, 16 * 1024, ct);
        return (body.Value, body.Problem);
    }

    private async Task<IResult> ChangeAsync(HttpRequest request, FunctionContext context, string federation, string? target, string? reason, bool rollback, CancellationToken ct)
    {
        string? refusal = null;
        var refusalStatus = StatusCodes.Status409Conflict;
        string? from = null;
        string? to = null;
        var updated = await store.UpdateAsync(federation, s =>
        {
            refusal = null;
            refusalStatus = StatusCodes.Status409Conflict;
            from = s.CurrentVersion;
            var history = s.PromotionHistory.ToList();
            if (rollback)
            {
                to = target ?? (history.Count > 0 ? history[^1] : null);
                if (to is null) { refusal = "There is no earlier promoted version to roll back to."; return s; }
            }
            else
            {
                to = target;
            }
            if (!s.Versions.Any(v => v.Version == to))
            {
                refusal = $"Federation '{federation}' has no model version '{to}'.";
                refusalStatus = StatusCodes.Status404NotFound;
                return s;
            }
            if (to == s.CurrentVersion) { refusal = $"Version '{to}' is already the current version."; return s; }
            if (rollback) history.Remove(to!);
            else if (s.CurrentVersion is not null) history.Add(s.CurrentVersion);
            var versions = s.Versions.Select(v =>
                v.Version == to ? v with { State = ModelVersionState.Promoted, Reason = reason ?? v.Reason } :
                v.Version == s.CurrentVersion ? v with { State = ModelVersionState.Retired } : v).ToArray();
            return s with { Versions = versions, CurrentVersion = to, PromotionHistory = [.. history] };
        }, ct);
        if (updated is null) return NotFound($"Federation '{federation}' does not exist.");
        if (refusal is not null) return refusalStatus == StatusCodes.Status404NotFound ? NotFound(refusal) : Conflict(refusal);
        await audit.AppendAsync(new AuditEvent(Actor(request), AuditActions.ModelPromote, $"federation/{federation}/model/{to}", AuditOutcome.Success, context.InvocationId,
            $"{(rollback ? "rollback" : "promote")} from {from ?? "none"} to {to}{(reason is null ? "" : ": " + reason)}"), ct);
        return Json(ToList(updated));
    }

    private static ModelVersionList ToList(FederationState state) => new(state.CurrentVersion, state.Versions);
}
