using Serverless.Functions.Hosting;
using System.Text;
using NCrontab;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Privacy;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Model.Import;
using static Serverless.Functions.Federations.Services.FederationHttp;

namespace Serverless.Functions.Federations;

/// <summary>Federation CRUD and the operator's hold-out set (docs/rounds.md, "Protocol").</summary>
public sealed class FederationFunctions(FederationStore store, FederationOptions options, IAuditLog audit, AccessPolicy policy, TimeProvider time)
{
    private const string Fed = ResourceRef.Federation;

    [Function("CreateFederation")]
    [RequirePermission(Permissions.FederationCreate)]
    public async Task<IResult> Create([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Federations)] HttpRequest request, FunctionContext context, CancellationToken ct)
    {
        var body = await ReadAsync<FederationConfig>(request, 1024 * 1024, ct);
        if (!body.IsValid) return body.Problem!;
        var config = body.Value!;
        if (Invalid(config) is { } problem) return problem;
        var state = new FederationState { Config = config, CreatedAt = time.GetUtcNow() };
        if (!await store.TryCreateAsync(state, ct)) return Conflict($"Federation '{config.Id}' already exists.");
        await audit.AppendAsync(new AuditEvent(Actor(request), "federation.create", $"federation/{config.Id}", AuditOutcome.Success, context.InvocationId), ct);
        request.HttpContext.Response.Headers.Location = "/" + RoundRoutes.Federation(config.Id);
        return Json(state.ToView(), StatusCodes.Status201Created);
    }

    [Function("ListFederations")]
    [RequirePermission(Permissions.FederationRead)]
    public async Task<IResult> List([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Federations)] HttpRequest request, CancellationToken ct)
    {
        var views = new List<FederationView>();
        await foreach (var state in store.ListAsync(ct))
        {
            var decision = await policy.DecideAsync(request.HttpContext.User, Permissions.FederationRead, new ResourceRef(Fed, state.Config.Id), ct);
            if (decision.Allowed) views.Add(state.ToView());
        }
        return Json(views.OrderBy(v => v.Config.Id, StringComparer.Ordinal).ToArray());
    }

    [Function("GetFederation")]
    [RequirePermission(Permissions.FederationRead, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Get([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Federation)] HttpRequest request, string federation, CancellationToken ct) =>
        await store.TryGetStateAsync(federation, ct) is { } state ? Json(state.ToView()) : NotFound($"Federation '{federation}' does not exist.");

    [Function("UpdateFederation")]
    [RequirePermission(Permissions.FederationManage, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Update([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = RoundRoutes.Templates.Federation)] HttpRequest request, string federation, FunctionContext context, CancellationToken ct)
    {
        var body = await ReadAsync<FederationConfig>(request, 1024 * 1024, ct);
        if (!body.IsValid) return body.Problem!;
        var config = body.Value!;
        if (config.Id != federation)
            return Results.ValidationProblem(new Dictionary<string, string[]> { ["id"] = [$"must be '{federation}' (the id in the route); ids cannot change"] }, title: "Invalid federation configuration");
        if (Invalid(config) is { } problem) return problem;
        // Privacy settings only tighten once privacy has been spent; checked inside the conditional
        // update so that a round charged meanwhile is taken into account.
        IReadOnlyList<(string Field, string Message)> loosenings = [];
        var updated = await store.UpdateAsync(federation, s =>
        {
            loosenings = PrivacySettingsRules.Loosenings(s, config.Privacy);
            if (loosenings.Count > 0) return s;
            return PrivacySettingsRules.Apply(s, config with { HoldOut = config.HoldOut ?? s.Config.HoldOut }) with
            {
                NextScheduledRun = config.Schedule == s.Config.Schedule ? s.NextScheduledRun : null,
            };
        }, ct);
        if (updated is null) return NotFound($"Federation '{federation}' does not exist.");
        if (loosenings.Count > 0)
        {
            await audit.AppendAsync(new AuditEvent(Actor(request), "federation.update", $"federation/{federation}", AuditOutcome.Denied, context.InvocationId,
                "privacy settings may only be tightened once privacy has been spent: " + string.Join(", ", loosenings.Select(l => l.Field))), ct);
            return Results.Problem(statusCode: StatusCodes.Status409Conflict, title: "Privacy settings may only be tightened", detail: string.Join("; ", loosenings.Select(l => $"{l.Field} {l.Message}")),
                extensions: new Dictionary<string, object?> { ["errors"] = loosenings.GroupBy(l => l.Field).ToDictionary(g => g.Key, g => g.Select(l => l.Message).ToArray()) });
        }
        await audit.AppendAsync(new AuditEvent(Actor(request), "federation.update", $"federation/{federation}", AuditOutcome.Success, context.InvocationId), ct);
        return Json(updated.ToView());
    }

    [Function("DeleteFederation")]
    [RequirePermission(Permissions.FederationManage, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Delete([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = RoundRoutes.Templates.Federation)] HttpRequest request, string federation,
        [DurableClient] DurableTaskClient client, FunctionContext context, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(federation, ct);
        if (state is null) return NotFound($"Federation '{federation}' does not exist.");
        if (state.LastRound > 0 && await client.GetInstanceAsync(RoundRoutes.InstanceId(federation, state.LastRound), false, ct) is { } running && running.IsActive())
            return Conflict($"Round {state.LastRound} is running; delete the federation when it has finished.");
        await store.DeleteAsync(federation, ct);
        await audit.AppendAsync(new AuditEvent(Actor(request), "federation.delete", $"federation/{federation}", AuditOutcome.Success, context.InvocationId), ct);
        return Results.NoContent();
    }

    [Function("PutHoldOut")]
    [RequirePermission(Permissions.FederationManage, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> PutHoldOut([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = RoundRoutes.Templates.HoldOut)] HttpRequest request, string federation, FunctionContext context, CancellationToken ct)
    {
        if (await store.TryGetStateAsync(federation, ct) is not { } state) return NotFound($"Federation '{federation}' does not exist.");
        if (state.Config.Schema is not null)
            return Conflict("Hold-out sets are cohort CSV files in the generator's schema; this federation has its own schema.");
        using var buffer = new MemoryStream();
        var chunk = new byte[64 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + read > options.MaxHoldOutBytes)
                return Problem(StatusCodes.Status413PayloadTooLarge, "Body too large", $"The hold-out set exceeds {options.MaxHoldOutBytes} bytes.");
            buffer.Write(chunk, 0, read);
        }
        var bytes = buffer.ToArray();
        var imported = CohortCsv.Read(new StringReader(Encoding.UTF8.GetString(bytes)), "holdout.csv");
        if (!imported.Succeeded || imported.Cohort.Patients.Count == 0)
            return Problem(StatusCodes.Status400BadRequest, "Invalid hold-out set",
                imported.Cohort.Patients.Count == 0 && imported.Errors.Count == 0 ? "The CSV holds no patients." : $"{imported.Errors.Count} problems; the first: {imported.Errors[0]}",
                new Dictionary<string, object?> { ["errors"] = imported.Errors.Take(50).Select(e => e.ToString()).ToArray() });
        await store.PutHoldOutAsync(federation, bytes, ct);
        var blob = FederationStore.HoldOutName(federation);
        await store.UpdateAsync(federation, s => s with { Config = s.Config with { HoldOut = blob } }, ct);
        await audit.AppendAsync(new AuditEvent(Actor(request), "federation.holdout", $"federation/{federation}", AuditOutcome.Success, context.InvocationId,
            $"{imported.Cohort.Patients.Count} patients"), ct);
        return Json(new HoldOutInfo(blob, imported.Cohort.Patients.Count, imported.RejectedPatients.Count));
    }

    private static IResult? Invalid(FederationConfig config)
    {
        var errors = FederationRules.Validate(config).ToList();
        if (config.Schedule is not null && CrontabSchedule.TryParse(config.Schedule, new CrontabSchedule.ParseOptions { IncludingSeconds = true }) is null)
            errors.Add(("schedule", "must be a six-field cron expression (sec min hour day month weekday), e.g. \"0 0 2 * * *\""));
        if (errors.Count == 0) return null;
        return Results.ValidationProblem(errors.GroupBy(e => e.Field).ToDictionary(g => g.Key, g => g.Select(e => e.Message).ToArray()), title: "Invalid federation configuration");
    }
}
