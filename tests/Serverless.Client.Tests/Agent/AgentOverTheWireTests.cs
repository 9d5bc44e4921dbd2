using System.Globalization;
using System.Text;
using System.Text.Json;
using Serverless.Client.Agent;
using Serverless.Client.Simulation;
using Serverless.Federation.Rounds;
using Serverless.Client.Tests.Simulation;
using Serverless.Model.Data;
using Serverless.Model.Import;

namespace Serverless.Client.Tests.Agent;

/// <summary>
/// One agent run in process beside two agent processes and the host (HTTPS): every byte it sends is
/// captured, and it is "killed" after sealing its trained update but before advertising its keys, then
/// restarted from its directory.
/// </summary>
[Collection(FederationProcessesCollection.Name)]
public sealed class AgentOverTheWireTests
{
    [Fact]
    public async Task The_agent_resumes_a_round_from_its_sealed_state_and_never_sends_a_raw_record()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        var log = new StringWriter();
        await using var sim = await SimulationRunner.StartAsync(new SimulationOptions
        {
            Clients = 3, InProcessAgents = 1, Rounds = 2, Dropout = 0, Attackers = 0, Compare = false, Records = 120, Seed = 9,
            DifferentialPrivacy = true, SecureAggregation = true,
        }, log, cancel.Token);
        var me = sim.Agents[0];
        var capture = new List<(string Method, string Path, byte[] Bytes, byte[] Body)>();
        var agentLog = new StringWriter();
        var crashes = 0;

        async Task DriveAsync()
        {
            var crashOnce = true;
            while (true)
            {
                var config = AgentConfig.Load(me.Directory);
                using var certificate = AgentCommands.LoadCertificate(config.Certificate);
                using var keys = await AgentKeys.OpenAsync(me.Directory);
                using var http = AgentCommands.CreateHttpClient(config, certificate, new RecordingHandler(capture));
                var cohort = LocalData.Load(LocalDataFormat.Csv, [Path.Combine(me.Directory, "data.csv")]);
                var options = new AgentRunOptions
                {
                    PollInterval = TimeSpan.FromMilliseconds(700), MaxRounds = 2,
                    CrashBefore = (stage, phase) => crashOnce && stage == RoundStages.Training && phase == RoundPhase.AdvertiseKeys,
                };
                using var agent = new FederationAgent(me.Directory, config, keys, new RoundsClient(http), certificate, new LocalUpdatePipeline(cohort), options, new LineProgress(agentLog));
                try
                {
                    await agent.RunAsync(cancel.Token);
                    return;
                }
                catch (SimulatedCrashException)
                {
                    crashes++;
                    crashOnce = false;   // the next "process" runs from the same directory
                }
            }
        }

        var driver = Task.Run(DriveAsync);
        var report = await sim.RunAsync(new LineProgress(log), cancel.Token);
        await driver.WaitAsync(TimeSpan.FromMinutes(2));

        // Resumed: the restarted agent kept its sealed update, advertised once, and its update is in round 1.
        Assert.Equal(1, crashes);
        Assert.Contains("resuming round 1 after a restart (trained update kept)", agentLog.ToString());
        Assert.All(report.Rounds, r => Assert.True(r.Status.Phase == RoundPhase.Completed, $"round {r.Round}: {r.Status.Reason}\n{log}\n{agentLog}"));
        var round1 = report.Rounds.Single(r => r.Round == 1).Status;
        Assert.Contains(me.Id, round1.Seen);
        Assert.Empty(round1.Dropouts);
        Assert.Equal(3d, round1.Metrics["contributors"]);
        var entries = (await File.ReadAllLinesAsync(FederationAgent.LogPath(me.Directory))).Select(l => JsonSerializer.Deserialize<RoundLogEntry>(l, AgentJson.Options)!).ToList();
        Assert.Equal(1, Assert.Single(entries, e => e.Round == 1).Restarts);
        Assert.DoesNotContain("left", Assert.Single(entries, e => e.Round == 1).Outcome);
        // One advertisement per round: a transient failure may resend it, but only ever as the very same body.
        foreach (var round in new[] { 1, 2 })
        {
            var advertised = capture.Where(c => c.Method == "POST" && c.Path.EndsWith($"/rounds/{round}/{RoundStages.Training}/advertise", StringComparison.Ordinal))
                .Select(c => Convert.ToHexString(c.Body)).Distinct().ToList();
            Assert.Single(advertised);
        }

        // Every request is a protocol call of this federation.
        Assert.All(capture, c => Assert.StartsWith($"/api/federations/{SimulationRunner.MainFederation}/", c.Path));
        Assert.Contains(capture, c => c.Path.EndsWith("/training/masked", StringComparison.Ordinal));
        // The round messages travel Brotli-compressed (base64 in JSON gives back most of its third).
        Assert.All(capture.Where(c => c.Path.EndsWith("/training/masked", StringComparison.Ordinal)),
            c => Assert.Contains("Content-Encoding: br", Encoding.UTF8.GetString(c.Bytes), StringComparison.OrdinalIgnoreCase));
        // The malicious-server variant is the default: the agent signed the survivor set before it unmasked, and its keys were signed.
        Assert.Contains(capture, c => c.Path.EndsWith("/training/consistency", StringComparison.Ordinal));
        var ad = capture.First(c => c.Method == "POST" && c.Path.EndsWith("/training/advertise", StringComparison.Ordinal));
        var upload = System.Text.Json.JsonSerializer.Deserialize<AdvertiseKeysUpload>(ad.Body, RoundJson.Options)!;
        Assert.Equal(64, upload.Message.Signature.Length);

        // Nothing of the local records is in any byte sent: no patient id, no measured value, no column name.
        // (The bearer token the server issued is cut out: its dot-separated base64url could hold "29.4" by chance.)
        var sent = System.Text.RegularExpressions.Regex.Replace(Encoding.Latin1.GetString(capture.SelectMany(c => c.Bytes).ToArray()), "Bearer [A-Za-z0-9._-]+", "Bearer -");
        var records = CohortCsv.Read(Path.Combine(me.Directory, "data.csv"));
        Assert.NotEmpty(records.Cohort.Patients);
        foreach (var p in records.Cohort.Patients) Assert.DoesNotContain(p.PatientId, sent);
        var values = File.ReadLines(Path.Combine(me.Directory, "data.csv")).Skip(1)
            .SelectMany(line => line.Split(','))
            .Where(f => f.Contains('.') && f.Length >= 4 && double.TryParse(f, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
            .Distinct().ToList();
        Assert.True(values.Count > 100, $"only {values.Count} distinct measured values to look for");
        foreach (var v in values) Assert.DoesNotContain(v, sent);
        // A column name counts only as a token of its own: inside base64 ciphertext a three-letter name
        // like "bmi" turns up by chance (CI saw it), and that is not a leak.
        foreach (var column in CohortGenerator.Schema.VisitFeatures.Select(f => f.Name))
            Assert.DoesNotMatch(new System.Text.RegularExpressions.Regex($"(?<![A-Za-z0-9+/_-]){System.Text.RegularExpressions.Regex.Escape(column)}(?![A-Za-z0-9+/=_-])",
                System.Text.RegularExpressions.RegexOptions.IgnoreCase), sent);
    }

    /// <summary>Records every request's method, path, headers and body before it goes out.</summary>
    private sealed class RecordingHandler(List<(string, string, byte[], byte[])> sink) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var head = new StringBuilder($"{request.Method} {request.RequestUri}\n");
            foreach (var h in request.Headers) head.Append(h.Key).Append(": ").AppendJoin(',', h.Value).Append('\n');
            // A compressed body is searched as what it carries: compression must not hide a record from the checks below.
            var body = request.Content is null ? [] : await SentBody.ReadAsync(request.Content, cancellationToken);
            if (request.Content is not null) foreach (var h in request.Content.Headers) head.Append(h.Key).Append(": ").AppendJoin(',', h.Value).Append('\n');
            lock (sink) sink.Add((request.Method.Method, request.RequestUri!.AbsolutePath, [.. Encoding.UTF8.GetBytes(head.ToString()), .. body], body));
            return await base.SendAsync(request, cancellationToken);
        }
    }
}
