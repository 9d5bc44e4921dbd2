using System.Globalization;
using System.Text;
using Serverless.Client.Agent;
using Serverless.Client.Simulation;
using Serverless.Federation.Rounds;
using Serverless.Client.Tests.Simulation;
using Serverless.Model.Import;
using Serverless.Telemetry.Collection;
using Xunit.Abstractions;

namespace Serverless.Client.Tests.Simulation;

/// <summary>
/// A secure-aggregation round of three agent processes, the host and its worker, all exporting to one in-process
/// OTLP/HTTP receiver that decodes the protobuf: one trace holds them all, and nothing of the patients is in it.
/// </summary>
[Collection(FederationProcessesCollection.Name)]
public sealed class RoundTraceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_round_is_one_trace_across_the_operator_host_worker_orchestration_and_agents_and_carries_no_patient_value()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var log = new StringWriter();
        await using var sim = await SimulationRunner.StartAsync(new SimulationOptions
        {
            Clients = 3, Rounds = 1, Dropout = 0, Attackers = 0, Compare = false, Records = 120, Seed = 21,
            DifferentialPrivacy = true, SecureAggregation = true, Trace = true,
        }, log, cancel.Token);
        var report = await sim.RunAsync(new LineProgress(log), cancel.Token);
        var round = Assert.Single(report.Rounds, r => r.Federation == SimulationRunner.MainFederation);
        Assert.True(round.Status.Phase == RoundPhase.Completed, $"{round.Status.Reason}\n{log}");
        var receiver = sim.Telemetry!;

        // The round's span arrives when the orchestration ends; the agents' last spans a batch later.
        CollectedSpan? root = null;
        for (var wait = 0; wait < 150 && root is null; wait++)
        {
            root = receiver.Spans.FirstOrDefault(s => s.Name == "round" && s.Attribute("serverless.federation") == SimulationRunner.MainFederation);
            if (root is null) await Task.Delay(200);
        }
        Assert.True(root is not null, $"no round span arrived; spans: {string.Join(", ", receiver.Spans.Select(s => s.Name).Distinct())}");
        await Task.Delay(TimeSpan.FromSeconds(2));
        var trace = receiver.Spans.Where(s => s.TraceId == root.TraceId).ToList();
        var byId = trace.GroupBy(s => s.SpanId).ToDictionary(g => g.Key, g => g.First());
        output.WriteLine(Tree(trace));

        // Every process is in the one trace.
        var services = trace.Select(s => s.Service).ToHashSet();
        foreach (var service in new[] { "serverless-operator", "serverless-host", "serverless-agent" }) Assert.Contains(service, services);
        Assert.Contains(trace, s => s.Scope == "Microsoft.Azure.Functions.Worker");

        // The round span descends from the operator's request through the host and the worker's invocation.
        var chain = Ancestors(root, byId).ToList();
        Assert.Equal("operator start round", chain[^1].Name);
        Assert.Equal("serverless-operator", chain[^1].Service);
        Assert.Contains(chain, s => s.Service == "serverless-host" && s.Kind == 2);   // the host's server span of the HTTP trigger
        Assert.Contains(chain, s => s.Scope == "Microsoft.Azure.Functions.Worker"); // the worker's invocation
        Assert.Equal("1", root.Attribute("serverless.round"));
        Assert.Equal("Completed", root.Attribute("serverless.outcome"));

        // Its steps are its children, once each (a replay emits nothing): prepare, five phases per stage, commit, audit.
        var steps = trace.Where(s => s.ParentSpanId == root.SpanId).Select(s => s.Name).ToList();
        Assert.Equal(1, steps.Count(n => n == "RoundPrepare"));
        Assert.Equal(1, steps.Count(n => n == "RoundCommit"));
        Assert.Equal(1, steps.Count(n => n == "phase training/MaskedInput"));
        Assert.Equal(steps.Count, steps.Distinct().Count());
        // Replays: the orchestrator function ran once per episode (dozens), yet the orchestration, the round and each step are one span each.
        var episodes = trace.Count(s => s.Scope == "Microsoft.Azure.Functions.Worker" && s.Attribute("faas.name") == "FederatedRound");
        Assert.True(episodes > 5, $"only {episodes} orchestrator episodes: nothing was replayed");
        Assert.Single(trace, s => s.Name == "orchestration:FederatedRound");
        Assert.Single(receiver.Spans, s => s.Name == "round" && s.Attribute("serverless.federation") == SimulationRunner.MainFederation);
        var activityRuns = trace.Where(s => s.Scope == "Microsoft.Azure.Functions.Worker" && s.Attribute("faas.name") == "RoundCommit").ToList();
        Assert.Single(activityRuns);

        // Each agent's phases are in the trace, and their requests reach the host (parent links across processes).
        var agentPhases = trace.Where(s => s.Service == "serverless-agent" && s.Name.StartsWith("agent training/", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, agentPhases.Select(s => s.Attribute("serverless.agent")).Distinct().Count());
        Assert.Contains(trace, s => s.Service == "serverless-host" && s.ParentSpanId is { } p && byId.TryGetValue(p, out var parent)
            && parent.Service == "serverless-agent");

        // Only allowed attribute names, and the failure text of a span is never exported.
        foreach (var s in trace)
            foreach (var key in s.Attributes.Keys) Assert.True(Serverless.Telemetry.AttributeAllowList.Names.Contains(key), $"{s.Name}: attribute {key} is not allowed");

        // Nothing of any agent's records anywhere in the export (spans, logs, metrics, resources).
        var exported = string.Join("\n", receiver.Strings);
        foreach (var agent in sim.Agents)
        {
            var records = CohortCsv.Read(Path.Combine(agent.Directory, "data.csv"));
            foreach (var p in records.Cohort.Patients) Assert.DoesNotContain(p.PatientId, exported);
            var values = File.ReadLines(Path.Combine(agent.Directory, "data.csv")).Skip(1).SelectMany(line => line.Split(','))
                .Where(f => f.Contains('.') && f.Length >= 4 && double.TryParse(f, NumberStyles.Float, CultureInfo.InvariantCulture, out _)).Distinct().ToList();
            Assert.NotEmpty(values);
            // As a number of its own: "23.3" inside a timestamp's "23.3166065" is not that value.
            foreach (var v in values)
                Assert.DoesNotMatch(new System.Text.RegularExpressions.Regex($"(?<![0-9.]){System.Text.RegularExpressions.Regex.Escape(v)}(?![0-9])"), exported);
        }

        // Metrics came with the round: its outcome and phase durations.
        Assert.Contains(receiver.Metrics, m => m.Metric == "serverless.rounds" && m.Attributes.GetValueOrDefault("serverless.outcome") == "Completed");
        Assert.Contains(receiver.Metrics, m => m.Metric == "serverless.round.phase.duration" && m.Count > 0);
        Assert.Contains(receiver.Metrics, m => m.Metric == "serverless.secagg.bytes" && m.Value > 0);
        Assert.Contains(receiver.Metrics, m => m.Service == "serverless-host" && m.Metric == "serverless.function.duration"
            && m.Attributes.GetValueOrDefault("faas.name") == "RoundCommit" && m.Attributes.GetValueOrDefault("serverless.outcome") == "succeeded");

        // Logs written inside the round carry its trace id, and only templates: no rendered value.
        Assert.True(receiver.Logs.Any(l => l.TraceId == root.TraceId && l.SpanId is not null),
            $"no log record in the round's trace among {receiver.Logs.Count} ({string.Join(", ", receiver.Logs.Select(l => l.Service).Distinct())})");
    }

    private static IEnumerable<CollectedSpan> Ancestors(CollectedSpan span, Dictionary<string, CollectedSpan> byId)
    {
        while (span.ParentSpanId is { } p && byId.TryGetValue(p, out var parent))
        {
            yield return parent;
            span = parent;
        }
    }

    private static string Tree(List<CollectedSpan> trace)
    {
        var text = new StringBuilder();
        var ids = trace.Select(s => s.SpanId).ToHashSet();
        var children = trace.Where(s => s.ParentSpanId is not null).ToLookup(s => s.ParentSpanId!);
        void Walk(CollectedSpan s, int depth)
        {
            text.Append(' ', depth * 2).Append(CultureInfo.InvariantCulture, $"{s.Name} [{s.Service}/{s.Scope}] {s.Duration.TotalMilliseconds:0} ms {string.Join(' ', s.Attributes.Select(a => a.Key + "=" + a.Value))}\n");
            foreach (var c in children[s.SpanId].OrderBy(c => c.Start)) Walk(c, depth + 1);
        }
        foreach (var r in trace.Where(s => s.ParentSpanId is null || !ids.Contains(s.ParentSpanId)).OrderBy(s => s.Start)) Walk(r, 0);
        return text.ToString();
    }
}
