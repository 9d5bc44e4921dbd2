using Serverless.Functions.Hosting;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Rounds;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Functions.Federations.Services;

/// <summary>The input of the round orchestration.</summary>
/// <param name="TraceParent">The trace context of the request (or timer) that started the round: the round's spans join its trace.</param>
public sealed record RoundInput(string Federation, int Round, string Actor, string? Reason, string? TraceParent = null);

/// <summary>A round cannot start because another is running or starting.</summary>
internal sealed class RoundConflictException(string message, string? runningInstance = null) : Exception(message)
{
    public string? RunningInstance { get; } = runningInstance;
}

/// <summary>
/// Starting rounds (from HTTP and from the schedule) and describing them to operators and clients.
/// A round's instance id is <c>round-{fed}-{n}</c>: a number is used once, and starting an id whose
/// instance exists is refused by the engine, so two starters racing for the same number cannot both win.
/// </summary>
public sealed class RoundService(FederationStore store, IAuditLog audit)
{
    public const string OrchestratorName = "FederatedRound";

    /// <summary>The external event a client's message raises.</summary>
    public static string EventName(string stage, RoundPhase phase) => $"{stage}-{phase}".ToLowerInvariant();

    /// <summary>Starts the next round.</summary>
    /// <exception cref="RoundRefusedException">too few clients, or the privacy budget.</exception>
    /// <exception cref="RoundConflictException">a round is running.</exception>
    /// <exception cref="KeyNotFoundException">no such federation.</exception>
    public async Task<(string InstanceId, int Round)> StartAsync(DurableTaskClient client, string federation, string actor, string? reason, string? requestId, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var state = await store.TryGetStateAsync(federation, ct) ?? throw new KeyNotFoundException($"Federation '{federation}' does not exist.");
            if (state.LastRound > 0)
            {
                var last = await client.GetInstanceAsync(RoundRoutes.InstanceId(federation, state.LastRound), getInputsAndOutputs: false, ct);
                if (last is null || last.IsActive())
                    throw new RoundConflictException($"Round {state.LastRound} of federation '{federation}' is {(last is null ? "starting" : "running")}; one round runs at a time.",
                        RoundRoutes.InstanceId(federation, state.LastRound));
            }
            try
            {
                RoundCoordinator.CheckCanStart(state);
            }
            catch (RoundRefusedException e)
            {
                await audit.AppendAsync(new AuditEvent(actor, AuditActions.RoundStart, $"federation/{federation}", AuditOutcome.Denied, requestId, e.Message), ct);
                throw;
            }
            var round = state.LastRound + 1;
            var instanceId = RoundRoutes.InstanceId(federation, round);
            var existing = await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, ct);
            if (existing is null)
            {
                try
                {
                    await client.ScheduleNewOrchestrationInstanceAsync(OrchestratorName, new RoundInput(federation, round, actor, reason, System.Diagnostics.Activity.Current?.Id),
                        new StartOrchestrationOptions(instanceId), ct);
                }
                // The backend refuses an id in use (how depends on the backend): another starter won the race.
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    if (await client.GetInstanceAsync(instanceId, getInputsAndOutputs: false, ct) is null) throw;
                    throw new RoundConflictException($"Round {round} of federation '{federation}' is already starting.", instanceId);
                }
            }
            // Record the number (also repairs a starter that scheduled and then died before recording it).
            await store.UpdateAsync(federation, s => s.LastRound >= round ? s : s with { LastRound = round }, ct);
            if (existing is null)
            {
                await audit.AppendAsync(new AuditEvent(actor, AuditActions.RoundStart, $"federation/{federation}/round/{round}", AuditOutcome.Success, requestId,
                    reason is null ? instanceId : $"{instanceId}: {reason}"), ct);
                return (instanceId, round);
            }
            if (existing.IsActive()) throw new RoundConflictException($"Round {round} of federation '{federation}' is running.", instanceId);
            // A finished round whose number was never recorded: recorded now; try the next number.
        }
        throw new RoundConflictException($"Could not allocate a round number for federation '{federation}'.");
    }

    /// <summary>The status of round <paramref name="round"/>, or null when it does not exist.</summary>
    public async Task<RoundStatus?> GetStatusAsync(DurableTaskClient client, string federation, int round, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(federation, ct);
        if (state is null || round < 1 || round > state.LastRound) return null;
        var instance = await client.GetInstanceAsync(RoundRoutes.InstanceId(federation, round), getInputsAndOutputs: true, ct);
        if (instance is null) return null;
        var progress = instance.ReadCustomStatusAs<RoundProgress>() ?? new RoundProgress { Phase = RoundPhase.Starting };
        if (instance.RuntimeStatus == OrchestrationRuntimeStatus.Completed && instance.ReadOutputAs<RoundProgress>() is { } output) progress = output;
        if (instance.RuntimeStatus is OrchestrationRuntimeStatus.Failed or OrchestrationRuntimeStatus.Terminated && progress.Phase is not (RoundPhase.Failed or RoundPhase.Refused))
            progress = progress with
            {
                Phase = RoundPhase.Failed,
                Reason = instance.RuntimeStatus == OrchestrationRuntimeStatus.Terminated ? "terminated" : instance.FailureDetails?.ErrorMessage ?? "the orchestration failed",
            };
        var budget = state.Config.Privacy.Enabled ? state.Config.Privacy.EpsilonBudget : 0;
        var open = progress.Phase is >= RoundPhase.AdvertiseKeys and <= RoundPhase.Upload;
        return new RoundStatus(federation, round, instance.InstanceId, progress.Phase, progress.Stage, open ? progress.Deadline : null,
            progress.Selected, progress.Seen, progress.Dropouts, progress.Excluded, progress.Metrics,
            progress.Phase is RoundPhase.Completed ? progress.EpsilonSpent : Math.Max(progress.EpsilonSpent, state.EpsilonSpent), budget,
            progress.BaseVersion, progress.NewVersion, progress.Promoted, progress.Reason,
            // Before the orchestration's first step publishes its status, the trace context is only in its input.
            progress.TraceParent ?? instance.ReadInputAs<RoundInput>()?.TraceParent);
    }

    /// <summary>What the calling client should do in round <paramref name="round"/>.</summary>
    public async Task<ClientTask?> GetTaskAsync(DurableTaskClient client, string federation, int round, string clientId, CancellationToken ct)
    {
        var status = await GetStatusAsync(client, federation, round, ct);
        if (status is null) return null;
        var plan = await store.GetPlanAsync(federation, round, ct);
        var instance = await client.GetInstanceAsync(RoundRoutes.InstanceId(federation, round), getInputsAndOutputs: true, ct);
        var progress = instance?.ReadCustomStatusAs<RoundProgress>() ?? new RoundProgress();
        ClientTask Answer(ClientAction action, int secAggId = 0, string? reason = null) =>
            new(federation, round, status.Stage, status.Phase, action, status.PhaseDeadline, secAggId, null, null, null, null, null, null, false, reason);
        if (status.Phase is RoundPhase.Completed or RoundPhase.Failed or RoundPhase.Refused)
            return Answer(plan?.ClientById(clientId) is null ? ClientAction.NotSelected : ClientAction.Done, plan?.ClientById(clientId)?.SecAggId ?? 0, status.Reason ?? $"the round is {status.Phase}");
        if (plan is null) return Answer(ClientAction.Wait);
        var me = plan.ClientById(clientId);
        if (me is null) return Answer(ClientAction.NotSelected, 0, "not selected for this round");
        var stage = plan.StageOf(status.Stage);
        if (stage is null || status.Phase is RoundPhase.Starting or RoundPhase.Aggregating) return Answer(ClientAction.Wait, me.SecAggId);

        // Out of the current stage: the round is over for this client, unless a later stage (training after
        // statistics) will ask it again.
        var later = plan.Stages.SkipWhile(s => s.Stage != stage.Stage).Skip(1).Any();
        var excluded = status.Excluded.FirstOrDefault(e => e.ClientId == clientId && e.Stage == status.Stage);
        if (excluded is not null) return Answer(later ? ClientAction.Wait : ClientAction.Done, me.SecAggId, $"excluded from the {stage.Stage} stage: {excluded.Reason}");
        if (!progress.Active.Contains(me.SecAggId))
        {
            var dropout = status.Dropouts.FirstOrDefault(d => d.ClientId == clientId && d.Stage == status.Stage);
            return Answer(later ? ClientAction.Wait : ClientAction.Done, me.SecAggId,
                dropout is null ? $"no longer in the {stage.Stage} stage" : $"dropped out of the {stage.Stage} stage: no accepted {dropout.Phase} message before the phase closed");
        }
        var submitted = await store.HasMessageAsync(federation, round, stage.Stage, status.Phase, me.SecAggId, ct);
        KeysBroadcast? keys = null;
        ForwardedShares? shares = null;
        UnmaskRequest? unmask = null;
        if (!submitted)
        {
            switch (status.Phase)
            {
                case RoundPhase.ShareKeys:
                    keys = await store.GetOutputAsync<KeysBroadcast>(federation, round, stage.Stage, $"keys-{me.SecAggId}", ct);
                    if (keys is null) return Answer(ClientAction.Wait, me.SecAggId);
                    break;
                case RoundPhase.MaskedInput:
                    shares = await store.GetOutputAsync<ForwardedShares>(federation, round, stage.Stage, $"shares-{me.SecAggId}", ct);
                    if (shares is null) return Answer(ClientAction.Wait, me.SecAggId);
                    break;
                case RoundPhase.ConsistencyCheck:
                    unmask = await store.GetOutputAsync<UnmaskRequest>(federation, round, stage.Stage, "unmask", ct);
                    if (unmask is null) return Answer(ClientAction.Wait, me.SecAggId);
                    break;
                case RoundPhase.Unmasking:
                    unmask = await store.GetOutputAsync<UnmaskRequest>(federation, round, stage.Stage, stage.Parameters is { RequireSignatures: true } ? "unmask-signed" : "unmask", ct);
                    if (unmask is null) return Answer(ClientAction.Wait, me.SecAggId);
                    break;
            }
        }
        var statistics = stage.Stage == RoundStages.Statistics ? RoundCoordinator.StatisticsTaskOf(plan) : null;
        var training = stage.Stage == RoundStages.Training
            ? new TrainingTask(plan.BaseVersion, plan.Fit with { Seed = plan.Fit.Seed * 100_003 + me.SecAggId }, plan.Config.Training.BatchSize, plan.Config.Training.WeightCap, plan.Encoding)
            : null;
        return new ClientTask(federation, round, stage.Stage, status.Phase, submitted ? ClientAction.Wait : ClientAction.Act, status.PhaseDeadline, me.SecAggId,
            stage.Parameters, keys, shares, unmask, statistics, training, submitted, null, stage.Parameters is { RequireSignatures: true } ? plan.Peers() : null);
    }
}
