using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Serverless.Client.Agent;
using Serverless.Client.Simulation;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Testing;

namespace Serverless.Client.Tests.Simulation;

/// <summary>
/// The acceptance run, once for the class: the function host and 4 hospital agents as separate processes
/// over HTTPS (dev CA), 3 rounds with secure aggregation and distributed DP; hospital-1 is killed
/// (SIGKILL) in round 2 after committing to the training stage's secure aggregation, and hospital-4
/// scales its update by 100 in round 3.
/// </summary>
public sealed class FederationEndToEndFixture : IAsyncLifetime
{
    public const string Killed = "hospital-1";
    public const string Attacker = "hospital-4";
    internal SimulationRunner Sim { get; private set; } = null!;
    internal SimulationReport Report { get; private set; } = null!;
    public StringWriter Log { get; } = new();

    public async Task InitializeAsync()
    {
        var options = new SimulationOptions
        {
            Clients = 4, Rounds = 3, Attackers = 1, AttackRounds = [3], AttackFactor = 100,
            Kills = new Dictionary<int, string[]> { [2] = [Killed] },
            DifferentialPrivacy = true, SecureAggregation = true, EpsilonBudget = 8, Records = 160, Seed = 5, Compare = false,
            RoundTimeout = TimeSpan.FromMinutes(3),
            Deadlines = new FederationDeadlines
            {
                AdvertiseKeys = TimeSpan.FromSeconds(90), ShareKeys = TimeSpan.FromSeconds(60), MaskedInput = TimeSpan.FromSeconds(60),
                Unmasking = TimeSpan.FromSeconds(60), Upload = TimeSpan.FromSeconds(60),
            },
        };
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        Sim = await SimulationRunner.StartAsync(options, Log, cancel.Token);
        Report = await Sim.RunAsync(new LineProgress(Log), cancel.Token);
    }

    public async Task DisposeAsync()
    {
        if (Sim is not null) await Sim.DisposeAsync();
    }

    internal ObservedRound Round(int round) => Report.Rounds.Single(r => r.Federation == SimulationRunner.MainFederation && r.Round == round);

    /// <summary>A federation-client token of one agent, read from its sealed credentials.</summary>
    public async Task<string> AgentTokenAsync(string agent)
    {
        var dir = Sim.Agents.Single(a => a.Id == agent).Directory;
        using var keys = await AgentKeys.OpenAsync(dir);
        var credentials = await FederationAgent.CredentialsFile(dir, SimulationRunner.MainFederation, keys).LoadAsync();
        return credentials!.Token;
    }
}

[Collection(FederationProcessesCollection.Name)]
public sealed class FederationEndToEndTests(FederationEndToEndFixture e2e) : IClassFixture<FederationEndToEndFixture>
{
    private const string Fed = SimulationRunner.MainFederation;

    [Fact]
    public void Every_round_completes_and_the_killed_round_completes_with_the_survivors()
    {
        Assert.All(e2e.Report.Rounds, r => Assert.True(r.Status.Phase == RoundPhase.Completed, $"round {r.Round}: {r.Status.Phase} {r.Status.Reason}\n{e2e.Log}"));
        var killedRound = e2e.Round(2);
        Assert.Equal([FederationEndToEndFixture.Killed], killedRound.Killed);
        Assert.Equal(4, killedRound.Status.Selected.Length);
        var dropout = Assert.Single(killedRound.Status.Dropouts);
        Assert.Equal(FederationEndToEndFixture.Killed, dropout.ClientId);
        Assert.Equal(RoundStages.Training, dropout.Stage);
        Assert.Equal("v2", killedRound.Status.NewVersion);
        Assert.Equal(1, e2e.Report.DropoutsRecovered);
    }

    [Fact]
    public async Task The_killed_agent_resumes_from_its_sealed_state_and_takes_part_in_the_next_round()
    {
        var agent = e2e.Sim.Agents.Single(a => a.Id == FederationEndToEndFixture.Killed);
        Assert.Equal(2, agent.Starts);
        // The agent logs a round only when it next polls after the round ended (its status says Completed
        // before this agent has asked again, and a loaded machine can delay that poll): wait for round 3's
        // line, generously, rather than expect it to be there already.
        List<RoundLogEntry> log = [];
        var until = Stopwatch.GetTimestamp() + 180 * Stopwatch.Frequency;
        while (true)
        {
            log = await ReadLogAsync(FederationAgent.LogPath(agent.Directory));
            if (log.Any(e => e.Round == 3) || Stopwatch.GetTimestamp() > until) break;
            await Task.Delay(500);
        }
        Assert.True(log.Any(e => e.Round == 3), $"no round-3 line in {FederationAgent.LogPath(agent.Directory)} after 180 s (agent running: {agent.Running})");
        var round2 = Assert.Single(log, e => e.Round == 2);
        Assert.Equal(1, round2.Restarts);
        Assert.Contains("left training after", round2.Outcome);
        var round3 = Assert.Single(log, e => e.Round == 3);
        Assert.Equal(0, round3.Restarts);
        Assert.Contains(FederationEndToEndFixture.Killed, e2e.Round(3).Status.Seen);
        Assert.DoesNotContain(e2e.Round(3).Status.Dropouts, d => d.ClientId == FederationEndToEndFixture.Killed);
    }

    [Fact]
    public async Task The_attackers_unclipped_update_never_becomes_the_model()
    {
        // What the federation core promises under secure aggregation (RoundCoordinator.AggregateSecure): the
        // server sees only the sum; contributions clipped to S (plus the noise shares) bound the mean update's
        // norm, so a sum carrying an unclipped update exceeds that bound and the version is rejected by the
        // promotion gate. The current model stays the version before the attack.
        var attacked = e2e.Round(3);
        Assert.True(attacked.Attacked);
        Assert.Contains(FederationEndToEndFixture.Attacker, attacked.Status.Seen);
        Assert.Equal(RoundPhase.Completed, attacked.Status.Phase);
        Assert.False(attacked.Status.Promoted);
        Assert.Contains("did not clip", attacked.Status.Reason);
        Assert.True(attacked.Status.Metrics["updateNorm"] > attacked.Status.Metrics["normBound"]);

        var models = await e2e.Sim.GetAsync<ModelVersionList>(RoundRoutes.Models(Fed), default);
        var v3 = Assert.Single(models.Versions, v => v.Version == "v3");
        Assert.Equal(ModelVersionState.Rejected, v3.State);
        Assert.NotEqual("v3", models.Current);
        // Rounds 1 and 2 had honest clipped updates only: their norm stayed within the bound.
        foreach (var r in new[] { 1, 2 })
            Assert.True(e2e.Round(r).Status.Metrics["updateNorm"] <= e2e.Round(r).Status.Metrics["normBound"], $"round {r}");
        Assert.Equal(1, e2e.Report.AttacksContained);
    }

    [Fact]
    public async Task The_new_model_version_is_stored_encrypted()
    {
        var blob = Path.Combine(e2e.Sim.DataDirectory, "blobs", "checkpoints", "federations", Fed, "v2.checkpoint.json.blob");
        Assert.True(File.Exists(blob), $"no blob at {blob}: {string.Join(", ", Directory.EnumerateFiles(e2e.Sim.DataDirectory, "*.blob", SearchOption.AllDirectories))}");
        var stored = await File.ReadAllBytesAsync(blob);
        var text = Encoding.Latin1.GetString(stored);
        Assert.Contains("SLENV", text);

        // The plaintext checkpoint, as an enrolled agent downloads it for round 3 (it trains from the current version).
        // Over mutual TLS, with the agent's own certificate: its token alone is refused (401).
        using var certificate = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(e2e.Sim.Agents.Single(a => a.Id == "hospital-2").Directory, "client.pfx"), password: null);
        using (var tokenOnly = SimulationRunner.CreateHttp(e2e.Sim.BaseAddress!, await e2e.AgentTokenAsync("hospital-2"), e2e.Sim.CaPem))
        using (var refused = await tokenOnly.GetAsync(RoundRoutes.Model(Fed, 3)))
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using var agent = SimulationRunner.CreateHttp(e2e.Sim.BaseAddress!, await e2e.AgentTokenAsync("hospital-2"), e2e.Sim.CaPem, certificate);
        var model = await agent.GetFromJsonAsync<RoundModel>(RoundRoutes.Model(Fed, 3), RoundJson.Options);
        var plain = model!.Checkpoint;
        Assert.Contains("parameters", plain, StringComparison.OrdinalIgnoreCase);
        foreach (var marker in new[] { "parameters", "preprocessor", "statistics", "lstmHidden" })
            Assert.DoesNotContain(marker, text, StringComparison.OrdinalIgnoreCase);
        for (var i = 0; i + 64 <= plain.Length; i += 997) Assert.DoesNotContain(plain.Substring(i, 64), text);
    }

    [Fact]
    public async Task The_current_versions_ONNX_downloads_and_runs_in_ONNX_Runtime_like_the_CSharp_model()
    {
        var models = await e2e.Sim.GetAsync<ModelVersionList>(RoundRoutes.Models(Fed), default);
        using var response = await e2e.Sim.SendAsync(HttpMethod.Get, RoundRoutes.ModelOnnx(Fed, models.Current!), null, default);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        using var scorer = OnnxScorer.Load(bytes);   // validates the graph is exactly what the exporter writes
        var onnx = scorer.Model;

        var c = onnx.Config;
        var random = new Random(3);
        const int n = 64;
        var values = new float[n * c.Steps * c.Features];
        for (var i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 4 - 2);
        var mask = new float[n * c.Steps];
        for (var b = 0; b < n; b++) for (var t = 0; t < c.Steps - b % 3; t++) mask[b * c.Steps + t] = 1;
        var data = new SequenceDataset(n, c.Steps, c.Features, c.Classes, values, mask, new int[n]);
        var expected = new CnnLstm(c).Predict(onnx.Parameters, data);
        var actual = scorer.Predict(data);
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-4);
    }

    [Fact]
    public async Task The_audit_trail_verifies_and_records_every_round()
    {
        using var response = await e2e.Sim.SendAsync(HttpMethod.Get, "api/audit/verify", null, default);
        var report = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(report.GetProperty("intact").GetBoolean(), report.ToString());
        var entries = await e2e.Sim.GetAsync<JsonElement[]>("api/audit/entries?limit=1000", default);
        foreach (var round in new[] { 1, 2, 3 })
        {
            var resource = $"federation/{Fed}/round/{round}";
            Assert.Contains(entries, e => e.GetProperty("action").GetString() == "round.finish" && e.GetProperty("resource").GetString() == resource);
        }
    }

    [Fact]
    public async Task Epsilon_spent_equals_the_accountants_figure_for_the_rounds_run()
    {
        var view = await e2e.Sim.GetAsync<FederationView>(RoundRoutes.Federation(Fed), default);
        Assert.Equal(3, view.RoundsCompleted);
        var z = view.Config.Privacy.NoiseMultiplier;
        // Three training steps and, in round 1, the statistics release (one Gaussian step at the statistics z; decision 0023).
        var zs = view.Config.Privacy.StatisticsNoiseMultiplier;
        var expected = new PrivacyBudget(double.MaxValue, view.Config.Privacy.Delta).EpsilonAfter([(1.0, zs), (1.0, z), (1.0, z), (1.0, z)]);
        Assert.Equal(expected, view.EpsilonSpent, 1e-9);
        Assert.Equal(expected, e2e.Round(3).Status.EpsilonSpent, 1e-9);
        Assert.True(view.EpsilonSpent <= view.EpsilonBudget);
        // After one round the spend is the one-round figure: the accountant composes per round.
        Assert.Equal(new PrivacyBudget(double.MaxValue, view.Config.Privacy.Delta).EpsilonAfter([(1.0, zs), (1.0, z)]), e2e.Round(1).Status.EpsilonSpent, 1e-9);
    }

    private static async Task<List<RoundLogEntry>> ReadLogAsync(string path)
    {
        try
        {
            return (await File.ReadAllLinesAsync(path)).Select(ParseOrNull).OfType<RoundLogEntry>().Where(e => e.Federation == Fed).ToList();
        }
        catch (IOException)
        {
            return [];   // not written yet, or being written right now
        }
    }

    private static RoundLogEntry? ParseOrNull(string line)
    {
        try { return JsonSerializer.Deserialize<RoundLogEntry>(line, AgentJson.Options); }
        catch (JsonException) { return null; }   // a line being appended right now
    }

}
