using System.Text.Json;
using Serverless.Client.Agent;
using Serverless.Client.Simulation;
using Serverless.Federation.Rounds;
using Serverless.Client.Tests.Simulation;
using Serverless.Model.Import;

namespace Serverless.Client.Tests.Agent;

/// <summary>
/// One agent, run in process beside two agent processes and the host, is "killed" (its process state thrown away) right
/// after sealing each training-stage message and before sending it, at every phase of round 1, and restarted from its
/// directory each time. It must resume with its sealed keys and shares, and its input must be in every round's sum.
/// </summary>
[Collection(FederationProcessesCollection.Name)]
public sealed class AgentResumeTests
{
    [Fact]
    public async Task An_agent_killed_at_every_phase_resumes_with_the_same_keys_and_shares_and_its_input_is_in_the_sum()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var log = new StringWriter();
        await using var sim = await SimulationRunner.StartAsync(new SimulationOptions
        {
            Clients = 3, InProcessAgents = 1, Rounds = 2, Dropout = 0, Attackers = 0, Compare = false, Records = 100, Seed = 11,
            DifferentialPrivacy = false, SecureAggregation = true,
        }, log, cancel.Token);
        var me = sim.Agents[0];
        var agentLog = new StringWriter();
        var bodies = new List<(string Path, string Body)>();
        var crashAt = new Queue<RoundPhase>(RoundCoordinator.SecurePhases);
        var crashes = new List<RoundPhase>();

        async Task DriveAsync()
        {
            while (true)
            {
                var config = AgentConfig.Load(me.Directory);
                using var certificate = AgentCommands.LoadCertificate(config.Certificate);
                using var keys = await AgentKeys.OpenAsync(me.Directory);
                using var http = AgentCommands.CreateHttpClient(config, certificate, new BodyRecorder(bodies));
                var cohort = LocalData.Load(LocalDataFormat.Csv, [Path.Combine(me.Directory, "data.csv")]);
                var options = new AgentRunOptions
                {
                    PollInterval = TimeSpan.FromMilliseconds(300), MaxRounds = 2,
                    CrashBefore = (stage, phase) => stage == RoundStages.Training && crashAt.TryPeek(out var next) && next == phase && crashAt.Dequeue() == phase,
                };
                using var agent = new FederationAgent(me.Directory, config, keys, new RoundsClient(http), certificate, new LocalUpdatePipeline(cohort), options, new LineProgress(agentLog));
                try
                {
                    await agent.RunAsync(cancel.Token);
                    return;
                }
                catch (SimulatedCrashException e)
                {
                    crashes.Add(Enum.Parse<RoundPhase>(e.Message.Split('/')[^1]));
                }
            }
        }

        var driver = Task.Run(DriveAsync);
        var report = await sim.RunAsync(new LineProgress(log), cancel.Token);
        await driver.WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(RoundCoordinator.SecurePhases, crashes);
        Assert.All(report.Rounds, r => Assert.True(r.Status.Phase == RoundPhase.Completed, $"round {r.Round}: {r.Status.Reason}\n{log}\n{agentLog}"));
        foreach (var round in report.Rounds)
        {
            Assert.Contains(me.Id, round.Status.Seen);
            Assert.DoesNotContain(round.Status.Dropouts, d => d.ClientId == me.Id);
            Assert.Equal(3d, round.Status.Metrics["contributors"]);   // the restarted agent's input is in the sum
        }
        Assert.Contains("with its sealed secure-aggregation keys and shares", agentLog.ToString());
        // Every phase message of round 1 went out as one body only: the same keys, the same shares, one masked input.
        foreach (var kind in new[] { "advertise", "shares", "masked", "unmask" })
        {
            var sent = bodies.Where(b => b.Path.EndsWith($"/rounds/1/{RoundStages.Training}/{kind}", StringComparison.Ordinal)).Select(b => b.Body).Distinct().ToList();
            Assert.True(sent.Count == 1, $"{kind}: {sent.Count} different bodies\n{agentLog}");
        }
        var entries = (await File.ReadAllLinesAsync(FederationAgent.LogPath(me.Directory))).Select(l => JsonSerializer.Deserialize<RoundLogEntry>(l, AgentJson.Options)!).ToList();
        var first = Assert.Single(entries, e => e.Round == 1);
        Assert.Equal(4, first.Restarts);
        Assert.DoesNotContain("left", first.Outcome);
    }

    private sealed class BodyRecorder(List<(string, string)> sink) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post && request.Content is not null)
            {
                var body = Convert.ToHexString(await SentBody.ReadAsync(request.Content, cancellationToken));
                lock (sink) sink.Add((request.RequestUri!.AbsolutePath, body));
            }
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
