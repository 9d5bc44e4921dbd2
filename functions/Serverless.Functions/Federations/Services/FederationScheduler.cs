using NCrontab;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Federation.Rounds;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// Decides which federations' schedules are due. An occurrence is claimed by moving the federation's
/// <c>NextScheduledRun</c> forward with an If-Match write: of several timers (or hosts) that see the same
/// due occurrence, exactly one wins the claim and starts the round; the round's deterministic instance
/// id is the second guard.
/// </summary>
public sealed class FederationScheduler(FederationStore store, RoundService rounds, IAuditLog audit, TimeProvider time)
{
    private static readonly CrontabSchedule.ParseOptions Seconds = new() { IncludingSeconds = true };

    /// <summary>Starts the rounds that are due; returns what happened per federation that was due.</summary>
    public async Task<IReadOnlyList<(string Federation, string Outcome)>> RunDueAsync(DurableTaskClient client, CancellationToken ct)
    {
        var outcomes = new List<(string, string)>();
        var now = time.GetUtcNow();
        var federations = new List<FederationState>();
        await foreach (var state in store.ListAsync(ct)) if (state.Config.Schedule is not null) federations.Add(state);
        foreach (var listed in federations)
        {
            var fed = listed.Config.Id;
            var schedule = CrontabSchedule.TryParse(listed.Config.Schedule, Seconds);
            if (schedule is null) continue;
            var claimed = false;
            await store.UpdateAsync(fed, s =>
            {
                claimed = false;
                if (s.Config.Schedule != listed.Config.Schedule) return s;
                var next = new DateTimeOffset(schedule.GetNextOccurrence(now.UtcDateTime), TimeSpan.Zero);
                if (s.NextScheduledRun is null) return s with { NextScheduledRun = next };   // first sight: wait for the next occurrence
                if (s.NextScheduledRun > now) return s;
                claimed = true;
                return s with { NextScheduledRun = next };
            }, ct);
            if (!claimed) continue;
            string outcome;
            try
            {
                var (instanceId, _) = await rounds.StartAsync(client, fed, "platform", "scheduled retraining", null, ct);
                outcome = $"started {instanceId}";
            }
            catch (RoundRefusedException e)
            {
                outcome = $"refused: {e.Message}";
            }
            catch (RoundConflictException e)
            {
                outcome = $"skipped: {e.Message}";
                await audit.AppendAsync(new AuditEvent("platform", AuditActions.RoundStart, $"federation/{fed}", AuditOutcome.Failure, null, "scheduled round skipped: " + e.Message), ct);
            }
            outcomes.Add((fed, outcome));
        }
        return outcomes;
    }
}
