using System.Diagnostics;
using Microsoft.DurableTask;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Telemetry;

namespace Serverless.Functions.Federations;

/// <summary>
/// A round's steps timed by the orchestration's own clock (<see cref="TaskOrchestrationContext.CurrentUtcDateTime"/>,
/// the same in every replay), emitted as spans and metrics once, in the episode that ends the round: a replay
/// rebuilds the list and emits nothing. The spans join the trace of whoever started the round.
/// </summary>
internal sealed class RoundTimeline(TaskOrchestrationContext context)
{
    private readonly record struct Step(string Name, DateTime Start, DateTime End, int Parent, KeyValuePair<string, object?>[] Tags);

    private readonly List<Step> _steps = [];

    public DateTime Now => context.CurrentUtcDateTime;

    /// <summary>Adds a step of the round from <paramref name="start"/> until now; returns its index.</summary>
    public int Add(string name, DateTime start, params KeyValuePair<string, object?>[] tags) => AddWithin(-1, name, start, Now, tags);

    /// <summary>Adds a step within step <paramref name="parent"/>.</summary>
    public int AddWithin(int parent, string name, DateTime start, DateTime end, params KeyValuePair<string, object?>[] tags)
    {
        _steps.Add(new Step(name, start, end, parent, tags));
        return _steps.Count - 1;
    }

    /// <summary>The tags of a phase: how many clients were expected and how many answered.</summary>
    public static KeyValuePair<string, object?>[] Arrivals(int expected, int arrived) =>
        [new("serverless.clients", expected), new("serverless.survivors", arrived)];

    /// <summary>The round's span with its steps below it, and its metrics, unless this is a replay.</summary>
    public void Emit(RoundInput input, RoundProgress progress, DateTime started)
    {
        if (context.IsReplaying) return;
        var outcome = progress.Phase.ToString();
        ServerlessTelemetry.Rounds.Add(1, new KeyValuePair<string, object?>("serverless.outcome", outcome));
        ServerlessTelemetry.Dropouts.Add(progress.Dropouts.Length);
        if (progress.Phase == RoundPhase.Completed) ServerlessTelemetry.EpsilonSpent.Record(progress.EpsilonSpent);
        foreach (var step in _steps.Where(s => s.Name.StartsWith("phase ", StringComparison.Ordinal)))
            ServerlessTelemetry.PhaseDuration.Record((step.End - step.Start).TotalSeconds, new KeyValuePair<string, object?>("serverless.phase", step.Name[6..]));

        ActivityContext.TryParse(input.TraceParent, null, out var parent);
        using var round = ServerlessTelemetry.Source.StartActivity("round", ActivityKind.Internal, parent,
            [new("serverless.federation", input.Federation), new("serverless.round", input.Round), new("serverless.outcome", outcome),
             new("serverless.clients", progress.Selected.Length), new("serverless.dropouts", progress.Dropouts.Length)],
            startTime: Utc(started));
        if (round is null) return;   // nothing listens (export is off)
        var spans = new Activity?[_steps.Count];
        for (var i = 0; i < _steps.Count; i++)
        {
            var step = _steps[i];
            var over = step.Parent < 0 ? round : spans[step.Parent];
            spans[i] = over is null ? null : ServerlessTelemetry.Source.StartActivity(step.Name, ActivityKind.Internal, over.Context, step.Tags, startTime: Utc(step.Start));
        }
        for (var i = _steps.Count - 1; i >= 0; i--)
        {
            if (spans[i] is not { } span) continue;
            span.SetEndTime(_steps[i].End);
            span.Stop();
        }
        round.SetEndTime(Now);
    }

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));
}
