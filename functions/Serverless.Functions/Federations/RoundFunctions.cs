using Serverless.Functions.Hosting;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Privacy.SecureAggregation;
using Serverless.Security.RateLimiting;
using static Serverless.Functions.Federations.Services.FederationHttp;

namespace Serverless.Functions.Federations;

/// <summary>
/// Starting rounds, their status, and the client protocol of each phase (docs/rounds.md, "Protocol").
/// A federation client's calls are bound to its enrollment before they get here (<see cref="FederationClientMiddleware"/>).
/// </summary>
public sealed class RoundFunctions(RoundService rounds, FederationStore store, FederationOptions options)
{
    private const string Fed = ResourceRef.Federation;

    /// <summary>Polled endpoints allow 10 requests a second per caller (the security layer's default is 2); the per-caller total still applies.</summary>
    public const int PollPermitsPerMinute = 600;

    [Function("StartRound")]
    [RequirePermission(Permissions.RoundStart, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Start([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Rounds)] HttpRequest request, string federation,
        [DurableClient] DurableTaskClient client, FunctionContext context, CancellationToken ct)
    {
        string? reason = null;
        if (request.ContentLength is > 0 || request.Headers.ContentType.Count > 0)
        {
            var body = await ReadAsync<StartRoundRequest>(request, 16 * 1024, ct);
            if (!body.IsValid) return body.Problem!;
            reason = body.Value!.Reason;
        }
        try
        {
            var (instanceId, round) = await rounds.StartAsync(client, federation, Actor(request), reason, context.InvocationId, ct);
            request.HttpContext.Response.Headers["X-Round"] = round.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return await CheckStatusAsync(client, context, instanceId);
        }
        catch (KeyNotFoundException e)
        {
            return NotFound(e.Message);
        }
        catch (RoundRefusedException e)
        {
            return Refused(e);
        }
        catch (RoundConflictException e)
        {
            return Problem(StatusCodes.Status409Conflict, "A round is running", e.Message,
                e.RunningInstance is null ? null : new Dictionary<string, object?> { ["instanceId"] = e.RunningInstance });
        }
    }

    [Function("ListRounds")]
    [RequirePermission(Permissions.RoundRead, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> List([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Rounds)] HttpRequest request, string federation,
        [DurableClient] DurableTaskClient client, CancellationToken ct)
    {
        if (await store.TryGetStateAsync(federation, ct) is not { } state) return NotFound($"Federation '{federation}' does not exist.");
        var list = new List<RoundStatus>();
        for (var n = state.LastRound; n >= 1; n--)
            if (await rounds.GetStatusAsync(client, federation, n, ct) is { } status) list.Add(status);
        return Json(list.ToArray());
    }

    [Function("ActiveRound"), EndpointRateLimit(PollPermitsPerMinute)]
    [RequirePermission(Permissions.RoundRead, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Active([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.ActiveRound)] HttpRequest request, string federation,
        [DurableClient] DurableTaskClient client, CancellationToken ct)
    {
        if (await store.TryGetStateAsync(federation, ct) is not { } state) return NotFound($"Federation '{federation}' does not exist.");
        if (state.LastRound > 0 && await rounds.GetStatusAsync(client, federation, state.LastRound, ct) is { } status
            && status.Phase is not (RoundPhase.Completed or RoundPhase.Failed or RoundPhase.Refused))
            return Json(status);
        return NotFound($"No round of federation '{federation}' is running.");
    }

    [Function("GetRound"), EndpointRateLimit(PollPermitsPerMinute)]
    [RequirePermission(Permissions.RoundRead, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Get([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Round)] HttpRequest request, string federation, int round,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        await rounds.GetStatusAsync(client, federation, round, ct) is { } status ? Json(status) : NotFound($"Round {round} of federation '{federation}' does not exist.");

    [Function("GetRoundTask"), EndpointRateLimit(PollPermitsPerMinute)]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Task([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Task)] HttpRequest request, string federation, int round,
        [DurableClient] DurableTaskClient client, CancellationToken ct)
    {
        return await rounds.GetTaskAsync(client, federation, round, Actor(request), ct) is { } task ? Json(task) : NotFound($"Round {round} of federation '{federation}' does not exist.");
    }

    [Function("GetRoundModel")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public async Task<IResult> Model([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = RoundRoutes.Templates.Model)] HttpRequest request, string federation, int round, CancellationToken ct)
    {
        var plan = await store.GetPlanAsync(federation, round, ct);
        if (plan is null) return NotFound($"Round {round} of federation '{federation}' does not exist (or is not planned yet).");
        if (plan.ClientById(Actor(request)) is null) return Problem(StatusCodes.Status403Forbidden, "Not selected", $"'{Actor(request)}' is not selected for round {round}.");
        var checkpoint = await store.GetCheckpointAsync(federation, plan.BaseVersion, ct);
        return checkpoint is null
            ? Conflict($"Model {plan.BaseVersion} does not exist yet (the statistics stage creates it).")
            : Json(new RoundModel(plan.BaseVersion, checkpoint));
    }

    [Function("PostAdvertiseKeys")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Advertise([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Advertise)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<AdvertiseKeysUpload, AdvertiseKeysMessage>(request, client, federation, round, stage, RoundPhase.AdvertiseKeys, u => u.Message, m => m.ClientId, ct);

    [Function("PostShareKeys")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Shares([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Shares)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<ShareKeysUpload, ShareKeysMessage>(request, client, federation, round, stage, RoundPhase.ShareKeys, u => u.Message, m => m.ClientId, ct);

    [Function("PostMaskedInput")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Masked([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Masked)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<MaskedInputUpload, MaskedInputMessage>(request, client, federation, round, stage, RoundPhase.MaskedInput, u => u.Message, m => m.ClientId, ct);

    [Function("PostConsistency")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Consistency([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Consistency)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<ConsistencyUpload, ConsistencySignature>(request, client, federation, round, stage, RoundPhase.ConsistencyCheck, u => u.Message, m => m.ClientId, ct);

    [Function("PostUnmask")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Unmask([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Unmask)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<UnmaskUpload, UnmaskResponse>(request, client, federation, round, stage, RoundPhase.Unmasking, u => u.Message, m => m.ClientId, ct);

    [Function("PostPlainUpdate")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = Fed, ResourceParameter = "federation")]
    public Task<IResult> Upload([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Upload)] HttpRequest request, string federation, int round, string stage,
        [DurableClient] DurableTaskClient client, CancellationToken ct) =>
        SubmitAsync<PlainUpdateUpload, PlainUpdateUpload>(request, client, federation, round, stage, RoundPhase.Upload, u => u, _ => null, ct);

    /// <summary>202 with the status-query URLs Durable Functions returns for a started instance (Location: its status).</summary>
    private static async Task<IResult> CheckStatusAsync(DurableTaskClient client, FunctionContext context, string instanceId)
    {
        var request = await context.GetHttpRequestDataAsync() ?? throw new InvalidOperationException("not an HTTP invocation");
        var payload = client.CreateHttpManagementPayload(instanceId, request);
        context.GetHttpContext()!.Response.Headers.Location = payload.StatusQueryGetUri;
        return Results.Json(payload, statusCode: StatusCodes.Status202Accepted);
    }

    /// <summary>
    /// The common path of every phase POST: the caller must be selected and still in the stage, the
    /// phase must be open, the message's client id must be the caller's, the message must pass
    /// <see cref="RoundMessageValidator"/> (else 400, and nothing is stored); the message is stored once
    /// (a byte-identical retry is acknowledged again) and an arrival event is raised into the round.
    /// </summary>
    private async Task<IResult> SubmitAsync<TUpload, TMessage>(HttpRequest request, DurableTaskClient client, string federation, int round, string stage,
        RoundPhase phase, Func<TUpload, TMessage?> message, Func<TMessage, int?> claimedId, CancellationToken ct)
        where TMessage : class
    {
        if (!RoundStages.IsKnown(stage)) return NotFound($"Unknown stage '{stage}' (statistics or training).");
        var plan = await store.GetPlanAsync(federation, round, ct);
        if (plan is null) return NotFound($"Round {round} of federation '{federation}' does not exist (or is not planned yet).");
        var caller = Actor(request);
        var me = plan.ClientById(caller);
        if (me is null) return Problem(StatusCodes.Status403Forbidden, "Not selected", $"'{caller}' is not selected for round {round}.");
        if (plan.StageOf(stage) is null) return NotFound($"Round {round} has no {stage} stage.");

        var body = await ReadAsync<TUpload>(request, options.MaxMessageBytes, ct);
        if (!body.IsValid) return body.Problem!;
        var payload = message(body.Value!);
        if (payload is null) return Problem(StatusCodes.Status400BadRequest, "Invalid body", "message is required.");
        if (claimedId(payload) is { } id && id != me.SecAggId)
            return Problem(StatusCodes.Status400BadRequest, "Wrong client id", $"The message names client {id}; your secure-aggregation id is {me.SecAggId}.");
        var stagePlan = plan.StageOf(stage)!;
        if (stagePlan.Secure == (phase == RoundPhase.Upload))
            return Conflict($"The {stage} stage of round {round} is {(stagePlan.Secure ? "secure: it takes the secure-aggregation phases" : "plain: it takes one upload")}.");
        if (RoundMessageValidator.Validate(payload, plan, stagePlan, me.SecAggId) is { } invalid)
            return Problem(StatusCodes.Status400BadRequest, "Invalid message", invalid);

        var instanceId = RoundRoutes.InstanceId(federation, round);
        // The custom status is read with the inputs and outputs (Microsoft.DurableTask refuses it otherwise).
        var instance = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: true, ct);
        var progress = instance?.ReadCustomStatusAs<RoundProgress>();
        if (instance is null || !instance.IsActive() || progress is null || progress.Stage != stage || progress.Phase != phase)
            return Conflict($"Phase {stage}/{phase} is not open: the round is {(instance is null || !instance.IsActive() ? "not running" : $"in {progress?.Stage}/{progress?.Phase}")}.");
        if (!progress.Active.Contains(me.SecAggId))
            return Conflict($"Client '{caller}' is no longer in the {stage} stage of round {round} (dropped out or excluded).");

        var bytes = JsonSerializer.SerializeToUtf8Bytes(payload, RoundJson.Options);
        var outcome = await store.PutMessageAsync(federation, round, stage, phase, me.SecAggId, bytes, ct);
        if (outcome == FederationStore.StoreOutcome.Conflict)
            return Conflict($"A different {phase} message of client '{caller}' is already stored for this round; a phase takes one message per client.");
        // What travelled: the body as it arrived (compressed or not), before the arrival is raised and the round counts it.
        var wireBytes = Hosting.CompressedRequestBodies.WireBytesRead(request.HttpContext) ?? bytes.Length;
        await store.PutWireBytesAsync(federation, round, stage, phase, me.SecAggId, wireBytes, ct);
        // Raised again on a duplicate too: the first raise may have been lost to a crash after the store.
        await client.RaiseEventAsync(instanceId, RoundService.EventName(stage, phase), new PhaseArrival(me.SecAggId), ct);
        if (outcome != FederationStore.StoreOutcome.Duplicate && stagePlan.Secure)
            Serverless.Telemetry.ServerlessTelemetry.SecAggBytes.Add(wireBytes, new KeyValuePair<string, object?>("serverless.phase", $"{stage}/{phase}"));
        var receipt = new PhaseReceipt(round, stage, phase, me.SecAggId, outcome == FederationStore.StoreOutcome.Duplicate);
        return Json(receipt, outcome == FederationStore.StoreOutcome.Duplicate ? StatusCodes.Status200OK : StatusCodes.Status202Accepted);
    }
}
