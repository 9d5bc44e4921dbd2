using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Functions.Federations;

/// <summary>What <c>RoundPrepare</c> tells the orchestrator (no secrets, no big payloads: the plan itself is a blob).</summary>
public sealed record RoundPrepared(string? Refused, PlannedClient[] Selected, RoundPreparedStage[] Stages, string BaseVersion, double EpsilonSpent,
    FederationDeadlines Deadlines, int MinSurvivors);

/// <summary>A stage as the orchestrator runs it; <paramref name="Phases"/> are its secure phases (null: the four of the honest-but-curious protocol).</summary>
public sealed record RoundPreparedStage(string Stage, bool Secure, int[] ClientIds, RoundPhase[]? Phases = null);

/// <summary>Input of <c>RoundClosePhase</c>.</summary>
public sealed record RoundCloseInput(string Federation, int Round, string Stage, RoundPhase Phase, StageArrivals Arrivals);

/// <summary>A client left out by the secure-aggregation server.</summary>
public sealed record RoundSecAggExclusion(int SecAggId, string Reason);

/// <summary>Output of <c>RoundClosePhase</c>; <paramref name="Arrived"/> is who made the phase (arrival events and messages stored before the close).</summary>
public sealed record RoundClosed(int[] Next, int[] Dropped, RoundSecAggExclusion[] Exclusions, string? AbortReason, int[]? Arrived = null);

/// <summary>Input of the stage-finishing activities.</summary>
public sealed record RoundStageInput(string Federation, int Round, int[] Arrivals);

/// <summary>Output of <c>RoundCommit</c>.</summary>
public sealed record RoundCommitted(string Version, bool Promoted, string GateReason, Dictionary<string, double> Metrics, RoundExcludedClient[] Excluded, double EpsilonSpent);

/// <summary>Input of <c>RoundAudit</c>.</summary>
public sealed record RoundAuditInput(string Federation, int Round, string Actor, RoundPhase Phase, string? Reason, string? Version, bool Promoted);

/// <summary>
/// The round orchestration, <c>round-{fed}-{n}</c>: prepare (budget, selection, plan blob), then per stage
/// the secure-aggregation phases (four, five with the consistency check) as external-event waits bounded by durable deadlines (or one plain
/// upload phase), each closed by an activity that replays the stored messages into a fresh
/// <see cref="SecAggServer"/>; then the statistics or the commit (aggregate, checks, evaluation, gate,
/// encrypted checkpoint, ONNX, accountant) and the audit. Only ids and small records pass through its
/// history; every message and output is a blob, so a restarted host resumes where the history ends.
/// </summary>
public static class RoundOrchestration
{
    private static readonly TaskOptions Retry = TaskOptions.FromRetryPolicy(new RetryPolicy(5, TimeSpan.FromSeconds(1), backoffCoefficient: 2, maxRetryInterval: TimeSpan.FromSeconds(30)));

    [Function(RoundService.OrchestratorName)]
    public static async Task<RoundProgress> Run([OrchestrationTrigger] TaskOrchestrationContext context)
    {
        var input = context.GetInput<RoundInput>() ?? throw new InvalidOperationException("The round orchestration needs a RoundInput.");
        var started = context.CurrentUtcDateTime;
        var timeline = new RoundTimeline(context);
        var progress = new RoundProgress { Phase = RoundPhase.Starting, TraceParent = input.TraceParent };
        context.SetCustomStatus(progress);
        RoundPrepared prepared;
        try
        {
            prepared = await context.CallActivityAsync<RoundPrepared>(RoundActivities.Prepare, input, Retry);
            timeline.Add(RoundActivities.Prepare, started);
        }
        catch (TaskFailedException e)
        {
            return await End(context, timeline, started, input, progress with { Phase = RoundPhase.Failed, Reason = "prepare: " + e.FailureDetails.ErrorMessage });
        }
        if (prepared.Refused is not null)
            return await End(context, timeline, started, input, progress with { Phase = RoundPhase.Refused, Reason = prepared.Refused });

        var byId = prepared.Selected.ToDictionary(c => c.SecAggId, c => c.ClientId);
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        var dropouts = new List<RoundDropout>();
        var excluded = new List<RoundExcludedClient>();
        progress = progress with { Selected = prepared.Selected.Select(c => c.ClientId).ToArray(), BaseVersion = prepared.BaseVersion, EpsilonSpent = prepared.EpsilonSpent };
        int[] plainArrivals = [];
        try
        {
            foreach (var stage in prepared.Stages)
            {
                if (!stage.Secure)
                {
                    var uploadStart = context.CurrentUtcDateTime;
                    var deadline = uploadStart + prepared.Deadlines.Upload;
                    progress = progress with { Stage = stage.Stage, Phase = RoundPhase.Upload, Deadline = Utc(deadline), Active = stage.ClientIds };
                    context.SetCustomStatus(progress);
                    plainArrivals = await Collect(context, stage.Stage, RoundPhase.Upload, stage.ClientIds, prepared.Deadlines.Upload);
                    timeline.Add($"phase {stage.Stage}/{RoundPhase.Upload}", uploadStart, RoundTimeline.Arrivals(stage.ClientIds.Length, plainArrivals.Length));
                    foreach (var id in plainArrivals) seen.Add(byId[id]);
                    foreach (var id in stage.ClientIds.Except(plainArrivals)) dropouts.Add(new RoundDropout(byId[id], stage.Stage, RoundPhase.Upload));
                    progress = progress with { Seen = [.. seen], Dropouts = [.. dropouts], Active = plainArrivals };
                    if (plainArrivals.Length < prepared.MinSurvivors)
                        return await End(context, timeline, started, input, progress with { Phase = RoundPhase.Failed, Reason = $"{stage.Stage}/Upload: only {plainArrivals.Length} updates arrived; the round needs {prepared.MinSurvivors}" });
                    continue;
                }
                var arrivals = StageArrivals.Empty;
                var active = stage.ClientIds;
                foreach (var phase in stage.Phases ?? RoundCoordinator.SecurePhases)
                {
                    var phaseStart = context.CurrentUtcDateTime;
                    var deadline = phaseStart + DeadlineOf(prepared.Deadlines, phase);
                    progress = progress with { Stage = stage.Stage, Phase = phase, Deadline = Utc(deadline), Active = active };
                    context.SetCustomStatus(progress);
                    var got = await Collect(context, stage.Stage, phase, active, DeadlineOf(prepared.Deadlines, phase));
                    var collected = context.CurrentUtcDateTime;
                    var closed = await context.CallActivityAsync<RoundClosed>(RoundActivities.ClosePhase,
                        new RoundCloseInput(input.Federation, input.Round, stage.Stage, phase, arrivals.With(phase, got)), Retry);
                    var phaseStep = timeline.Add($"phase {stage.Stage}/{phase}", phaseStart, RoundTimeline.Arrivals(active.Length, got.Length));
                    timeline.AddWithin(phaseStep, "clients", phaseStart, collected);
                    timeline.AddWithin(phaseStep, RoundActivities.ClosePhase, collected, timeline.Now);
                    // The close also counts messages stored before it whose events the orchestration had not processed.
                    arrivals = arrivals.With(phase, closed.Arrived ?? got);
                    foreach (var id in arrivals.Of(phase)) seen.Add(byId[id]);
                    var excludedIds = closed.Exclusions.Select(e => e.SecAggId).ToHashSet();
                    foreach (var e in closed.Exclusions)
                        if (!excluded.Any(x => x.ClientId == byId[e.SecAggId] && x.Stage == stage.Stage))
                            excluded.Add(new RoundExcludedClient(byId[e.SecAggId], stage.Stage, e.Reason));
                    foreach (var id in closed.Dropped)
                        if (!excludedIds.Contains(id) && active.Contains(id) && !dropouts.Any(d => d.ClientId == byId[id] && d.Stage == stage.Stage))
                            dropouts.Add(new RoundDropout(byId[id], stage.Stage, phase));
                    progress = progress with { Seen = [.. seen], Dropouts = [.. dropouts], Excluded = [.. excluded], Active = closed.Next };
                    if (closed.AbortReason is not null)
                        return await End(context, timeline, started, input, progress with { Phase = RoundPhase.Failed, Deadline = null, Reason = $"{stage.Stage}/{phase}: {closed.AbortReason}" });
                    if (phase == RoundPhase.MaskedInput && stage.Stage == RoundStages.Training && closed.Next.Length < prepared.MinSurvivors)
                        return await End(context, timeline, started, input, progress with
                        {
                            Phase = RoundPhase.Failed, Deadline = null,
                            Reason = $"{stage.Stage}/{phase}: {closed.Next.Length} masked inputs survived; the round needs {prepared.MinSurvivors} (the distributed noise is calibrated for that many)",
                        });
                    active = closed.Next;
                }
                if (stage.Stage == RoundStages.Statistics)
                {
                    var finishing = context.CurrentUtcDateTime;
                    await context.CallActivityAsync<string>(RoundActivities.FinishStatistics, new RoundStageInput(input.Federation, input.Round, []), Retry);
                    timeline.Add(RoundActivities.FinishStatistics, finishing);
                }
            }
            progress = progress with { Phase = RoundPhase.Aggregating, Deadline = null, Active = [] };
            context.SetCustomStatus(progress);
            var committing = context.CurrentUtcDateTime;
            var committed = await context.CallActivityAsync<RoundCommitted>(RoundActivities.Commit, new RoundStageInput(input.Federation, input.Round, plainArrivals), Retry);
            timeline.Add(RoundActivities.Commit, committing);
            foreach (var e in committed.Excluded) excluded.Add(e);
            var metrics = new Dictionary<string, double>(committed.Metrics)
            {
                ["roundSeconds"] = (context.CurrentUtcDateTime - started).TotalSeconds,
                ["selected"] = prepared.Selected.Length,
                ["dropouts"] = dropouts.Count,
                ["excluded"] = excluded.Count,
            };
            return await End(context, timeline, started, input, progress with
            {
                Phase = RoundPhase.Completed, Excluded = [.. excluded], Metrics = metrics, EpsilonSpent = committed.EpsilonSpent,
                NewVersion = committed.Version, Promoted = committed.Promoted, Reason = committed.GateReason,
            });
        }
        catch (TaskFailedException e)
        {
            return await End(context, timeline, started, input, progress with { Phase = RoundPhase.Failed, Deadline = null, Reason = $"{e.TaskName}: {e.FailureDetails.ErrorMessage}" });
        }
    }

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));

    private static TimeSpan DeadlineOf(FederationDeadlines d, RoundPhase phase) => phase switch
    {
        RoundPhase.AdvertiseKeys => d.AdvertiseKeys,
        RoundPhase.ShareKeys => d.ShareKeys,
        RoundPhase.MaskedInput => d.MaskedInput,
        RoundPhase.ConsistencyCheck => d.ConsistencyCheck,
        RoundPhase.Unmasking => d.Unmasking,
        _ => d.Upload,
    };

    /// <summary>
    /// Waits for the expected clients' arrival events until all are in or the deadline passes (a durable timer). The
    /// decisions are <see cref="PhaseCollector"/>'s: a deadline the host observes later than its tolerance (the host, not
    /// the clients, was slow) is extended by that lateness, a bounded number of times.
    /// </summary>
    private static async Task<int[]> Collect(TaskOrchestrationContext context, string stage, RoundPhase phase, int[] expected, TimeSpan length)
    {
        var collector = new PhaseCollector(expected, context.CurrentUtcDateTime, length, PhaseDeadlinePolicy.Default);
        var name = RoundService.EventName(stage, phase);
        while (!collector.Complete)
        {
            var remaining = collector.Deadline - context.CurrentUtcDateTime;
            if (remaining <= TimeSpan.Zero)
            {
                if (collector.DeadlineObserved(context.CurrentUtcDateTime)) break;
                continue;
            }
            try
            {
                var arrival = await context.WaitForExternalEvent<PhaseArrival>(name, remaining);
                if (arrival is not null) collector.Arrived(arrival.SecAggId);
            }
            // Microsoft.DurableTask ends a wait that times out with TaskCanceledException.
            catch (TaskCanceledException)
            {
                if (collector.DeadlineObserved(context.CurrentUtcDateTime)) break;
            }
        }
        return collector.Got;
    }

    private static async Task<RoundProgress> End(TaskOrchestrationContext context, RoundTimeline timeline, DateTime started, RoundInput input, RoundProgress progress)
    {
        progress = progress with { Deadline = null, Active = [] };
        // round.finish is written before the status says the round ended: whoever sees Completed (or Failed,
        // Refused) also finds the audit entry, and the instance finishes in the same step as the final status.
        var auditing = context.CurrentUtcDateTime;
        await context.CallActivityAsync<bool>(RoundActivities.Audit,
            new RoundAuditInput(input.Federation, input.Round, input.Actor, progress.Phase, progress.Reason, progress.NewVersion, progress.Promoted), Retry);
        timeline.Add(RoundActivities.Audit, auditing);
        context.SetCustomStatus(progress);
        timeline.Emit(input, progress, started);
        return progress;
    }
}

/// <summary>The event a phase POST raises: which client's message is stored.</summary>
public sealed record PhaseArrival(int SecAggId);
