using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Serverless.Client.Agent;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Import;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Security;

using Serverless.Telemetry;
using Serverless.Telemetry.Collection;

namespace Serverless.Client.Simulation;

/// <summary>What <c>simulate</c> runs.</summary>
internal sealed record SimulationOptions
{
    public int Clients { get; init; } = 4;
    public int Rounds { get; init; } = 3;

    /// <summary>Probability that an agent is killed (SIGKILL) during a training round of the main federation.</summary>
    public double Dropout { get; init; } = 0.25;

    /// <summary>Exactly which agents to kill in which round of the main federation (replaces the random <see cref="Dropout"/>).</summary>
    public IReadOnlyDictionary<int, string[]>? Kills { get; init; }

    /// <summary>The first this-many agents are prepared and enrolled but not started: the caller runs them (tests run them in process).</summary>
    public int InProcessAgents { get; init; }

    /// <summary>Run every agent inside this process (a task each, same code and HTTPS) instead of one process each: for many agents on few cores.</summary>
    public bool AgentsInProcess { get; init; }

    /// <summary>
    /// Trace the run: a loopback OTLP receiver in this process takes the spans of the operator, the host, the worker and
    /// the agents, and each round's critical path is printed from them. Nothing leaves the machine.
    /// </summary>
    public bool Trace { get; init; }

    /// <summary>Only the two clean timing federations (with and without secure aggregation): the benchmark's round wall time.</summary>
    public bool TimingOnly { get; init; }

    /// <summary>Agents that corrupt their update (scaled by <see cref="AttackFactor"/>) in <see cref="AttackRounds"/>.</summary>
    public int Attackers { get; init; } = 1;

    public double AttackFactor { get; init; } = 100;

    /// <summary>Rounds the attackers attack in (null = the middle round).</summary>
    public IReadOnlyList<int>? AttackRounds { get; init; }

    public bool DifferentialPrivacy { get; init; } = true;

    /// <summary>
    /// With <see cref="DifferentialPrivacy"/>: client-level DP on the server's side (clip and noise each hospital's
    /// update), or patient-level DP in each agent (DP-SGD over its records, a per-patient budget of
    /// <see cref="EpsilonBudget"/> at delta 1e-5 kept by the agent; the server adds no noise).
    /// </summary>
    public bool PatientLevelDp { get; init; }

    /// <summary>Patient mode: the expected Poisson batch size L of DP-SGD.</summary>
    public int DpBatchSize { get; init; } = 32;

    /// <summary>Patient mode: the per-record gradient bound C.</summary>
    public double DpClipNorm { get; init; } = 1.0;

    public bool SecureAggregation { get; init; } = true;

    /// <summary>Patients generated per hospital (75 % its training data, 25 % into the operator's hold-out set).</summary>
    public int Records { get; init; } = 300;

    public int Seed { get; init; } = 1;

    /// <summary>Also run the same rounds with secure aggregation switched the other way (round time and bytes side by side).</summary>
    public bool Compare { get; init; } = true;

    public double EpsilonBudget { get; init; } = 8;
    /// <summary>z; null = calibrated so that <see cref="Rounds"/> rounds spend just under <see cref="EpsilonBudget"/>.</summary>
    public double? NoiseMultiplier { get; init; }

    /// <summary>Local epochs of the two timing federations (null = <see cref="LocalEpochs"/>): patient mode keeps their training short, so the main run gets the patients' budget.</summary>
    public int? TimingLocalEpochs { get; init; }

    public int EffectiveTimingLocalEpochs => TimingLocalEpochs ?? LocalEpochs;

    /// <summary>Rounds of the timing federations (each agent trains in all of them, on the same patients).</summary>
    public int TimingRounds => TimingOnly ? 2 * Rounds : Compare ? 2 * Math.Min(Rounds, 2) : 0;

    /// <summary>FedProx's mu of the federations (0 = FedAvg). Patient mode wants 0: per-record clipping shrinks the data gradient by about C / its norm, so the proximal pull dominates (docs/decisions/0020).</summary>
    public double ProximalMu { get; init; } = 0.01;

    /// <summary>DP-SGD steps an agent with <paramref name="records"/> records takes across the main and the timing federations (its patients are the same in all).</summary>
    public long PatientSteps(int records) =>
        (TimingOnly ? 0 : Rounds * Serverless.Model.Training.DpSgdOptions.PlannedSteps(DpBatchSize, records, LocalEpochs))
        + TimingRounds * Serverless.Model.Training.DpSgdOptions.PlannedSteps(DpBatchSize, records, EffectiveTimingLocalEpochs);

    /// <summary>
    /// Patient mode: the sigma of an agent with <paramref name="records"/> records, calibrated so that every round it may
    /// train in spends just under the budget on its own records (a larger hospital samples at a smaller rate and needs
    /// less noise for the same per-patient epsilon; the agents refuse, before training, a round beyond the budget).
    /// </summary>
    public double PatientNoiseMultiplier(int records) => NoiseMultiplier ?? Serverless.Federation.Privacy.PatientLevelDpStrategy.CalibrateNoise(EpsilonBudget * 0.98, 1e-5,
        Serverless.Model.Training.DpSgdOptions.SamplingRate(DpBatchSize, records), PatientSteps(records));

    /// <summary>The noise multiplier in force.</summary>
    public double EffectiveNoiseMultiplier => NoiseMultiplier ?? Serverless.Federation.Privacy.DifferentialPrivacyStrategy.CalibrateNoise(EpsilonBudget * 0.98, 1e-5, 1.0, Rounds);
    public double ClipNorm { get; init; } = 0.5;
    public int LocalEpochs { get; init; } = 2;
    public double LearningRate { get; init; } = 0.01;

    /// <summary>The pooled (centralized) baseline's own learning rate: tuned for it, whatever the agents use.</summary>
    public double CentralLearningRate { get; init; } = 0.01;

    /// <summary>HTTPS with the dev CA's server certificate (else HTTP on 127.0.0.1 with the same token auth).</summary>
    public bool Https { get; init; } = true;

    /// <summary>Working directory (default: a new temporary directory, deleted at the end unless <see cref="Keep"/>).</summary>
    public string? WorkDirectory { get; init; }

    public bool Keep { get; init; }

    /// <summary>The local Functions host (serverless-host.dll); default: found or built in this repository.</summary>
    public string? HostDll { get; init; }

    /// <summary>The function app's build output; default: found or built in this repository.</summary>
    public string? AppDirectory { get; init; }

    /// <summary>Longest wait for one round.</summary>
    public TimeSpan RoundTimeout { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>Agent poll interval.</summary>
    public int PollMilliseconds { get; init; } = 150;

    /// <summary>Phase deadlines of the simulated federations (short: a killed agent is waited for until its phase closes).</summary>
    public FederationDeadlines Deadlines { get; init; } = new()
    {
        AdvertiseKeys = TimeSpan.FromSeconds(60), ShareKeys = TimeSpan.FromSeconds(20), MaskedInput = TimeSpan.FromSeconds(30),
        Unmasking = TimeSpan.FromSeconds(20), Upload = TimeSpan.FromSeconds(60),
    };

    /// <exception cref="ArgumentException">a value out of range.</exception>
    public SimulationOptions Validated()
    {
        if (Clients is < 3 or > 256) throw new ArgumentException("--clients must be between 3 and 256");
        if (Rounds is < 1 or > 50) throw new ArgumentException("--rounds must be between 1 and 50");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException("--dropout must be in [0, 1)");
        if (InProcessAgents < 0 || InProcessAgents + Attackers > Clients) throw new ArgumentException("in-process agents and attackers must fit in the clients");
        if (Attackers < 0 || Attackers >= Clients) throw new ArgumentException("--attackers must be between 0 and clients - 1");
        if (Records is < 40 or > 100_000) throw new ArgumentException("--records must be between 40 and 100000");
        if (!(EpsilonBudget > 0)) throw new ArgumentException("--epsilon must be positive");
        return this;
    }
}

/// <summary>One round as the operator observed it.</summary>
internal sealed record ObservedRound(string Federation, int Round, RoundStatus Status, TimeSpan WallTime, IReadOnlyList<string> Killed, bool Attacked);

/// <summary>Everything the table shows, measured in this run.</summary>
internal sealed record SimulationReport(
    SimulationOptions Options, string Federation, string? CompareFederation,
    double CentralAuroc, double CentralAccuracy, double? FederatedAuroc, double? FederatedAccuracy, string? CurrentVersion,
    double EpsilonSpent, double EpsilonAccountant, int RoundsCompleted,
    double BytesPlainPerClient, double? BytesSentPerClient, double? BytesSentPerClientCompare,
    double? RoundSecondsSecAgg, double? RoundSecondsPlain,
    int Killed, int DropoutsReported, int DropoutsRecovered, int AttackedRounds, int AttacksContained, int AttackersFlagged,
    IReadOnlyList<ObservedRound> Rounds)
{
    /// <summary>Patient mode: the smallest and largest of the agents' DP-SGD sigmas (each calibrated for its own records).</summary>
    public (double Min, double Max)? PatientNoiseMultipliers { get; init; }
}

/// <summary>
/// The README's main command: the function host plus N hospital agents as separate processes on
/// 127.0.0.1 (HTTPS with the dev CA), generated non-IID cohorts, R rounds, then a table. The runner
/// owns every process it starts and stops them (by id) when disposed.
/// </summary>
internal sealed class SimulationRunner : IAsyncDisposable
{
    public const string MainFederation = "sim";
    public const string SecureTimingFederation = "sim-secagg";
    public const string PlainTimingFederation = "sim-plain";
    private static readonly TimeSpan StatusPollInterval = TimeSpan.FromMilliseconds(250);
    private readonly SimulationOptions _o;
    private readonly TextWriter _log;
    private readonly bool _ownsWork;
    private readonly List<AgentProcess> _agents = [];
    private ChildProcess? _host;
    private HttpClient? _operator;
    private OtlpReceiver? _receiver;
    private TelemetryProviders? _telemetry;
    private PatientCohort? _pooledTrain;
    private IReadOnlyList<PatientRecord>? _holdOut;

    private SimulationRunner(SimulationOptions options, TextWriter log, string work, bool ownsWork)
    {
        _o = options;
        _log = log;
        WorkDirectory = work;
        _ownsWork = ownsWork;
        DataDirectory = Path.Combine(work, "host");
        OperatorDirectory = Path.Combine(work, "operator");
    }

    public string WorkDirectory { get; }

    /// <summary>The host's data directory (keyring, audit.db, blobs, durable store).</summary>
    public string DataDirectory { get; }

    public Uri? BaseAddress { get; private set; }

    /// <summary>
    /// The operator's own directory, apart from the host's: the token issuer the app trusts, the dev CA and the
    /// certificates it issued. The simulation, like any client, never opens a file under <see cref="DataDirectory"/>.
    /// </summary>
    public string OperatorDirectory { get; }

    /// <summary>The dev CA the host's TLS certificate and the agents' client certificates chain to.</summary>
    public string CaPem => Path.Combine(OperatorDirectory, "dev-ca", "ca.pem");

    public IReadOnlyList<AgentProcess> Agents => _agents;

    /// <summary>The run's telemetry (with <see cref="SimulationOptions.Trace"/>), else null.</summary>
    public OtlpReceiver? Telemetry => _receiver;

    /// <summary>What a child process needs to export to <see cref="Telemetry"/> (empty without tracing).</summary>
    private IEnumerable<KeyValuePair<string, string?>> TelemetryEnvironment =>
        _receiver?.ExporterEnvironment.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value)) ?? [];

    /// <summary>Operator client (bearer token, dev CA trust).</summary>
    public HttpClient Operator => _operator ?? throw new InvalidOperationException("not started");

    /// <summary>Prepares data, certificates and tokens, starts the host, creates the federations, enrolls and starts the agents.</summary>
    public static async Task<SimulationRunner> StartAsync(SimulationOptions options, TextWriter log, CancellationToken ct)
    {
        options = options.Validated();
        var owns = options.WorkDirectory is null;
        var work = options.WorkDirectory ?? Directory.CreateTempSubdirectory("serverless-sim-").FullName;
        Directory.CreateDirectory(work);
        var runner = new SimulationRunner(options, log, work, owns);
        try
        {
            await runner.StartCoreAsync(ct);
            return runner;
        }
        catch
        {
            await runner.DisposeAsync();
            throw;
        }
    }

    private async Task StartCoreAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(DataDirectory);
        var launch = HostLocator.Find(_o.HostDll, _o.AppDirectory, _log);
        var clientDll = typeof(SimulationRunner).Assembly.Location;

        // The operator's issuer and CA, as 'admin issuer create' and 'admin ca' make them; the app is given only their public halves.
        Directory.CreateDirectory(OperatorDirectory);
        string operatorToken;
        using (var issuer = OfflineTokenIssuer.Create())
        {
            issuer.Save(OperatorDirectory);
            operatorToken = issuer.Issue(new TokenRequest("simulation-operator", ["operator", "data-scientist", "auditor"], Lifetime: TimeSpan.FromHours(12)));
        }
        DevTools.CreateCertificateAuthority(OperatorDirectory);
        var serverPfx = DevTools.IssueServerCertificate(OperatorDirectory);

        if (_o.Trace)
        {
            _receiver = await OtlpReceiver.StartAsync(ct);
            _telemetry = TelemetrySetup.Start("serverless-operator", export: TelemetryExport.ToReceiver(_receiver.Endpoint));
        }
        var scheme = _o.Https ? "https" : "http";
        var args = new List<string> { launch.AppDirectory, "--port", "0", "--data-dir", DataDirectory, "--keys", Path.Combine(WorkDirectory, "host-keys.json") };
        var environment = new Dictionary<string, string?>(TelemetryEnvironment)
        {
            ["SERVERLESS_TRUSTED_TOKEN_KEYS"] = Path.Combine(OperatorDirectory, OfflineTokenIssuer.JwksFileName),
            ["SERVERLESS_FEDERATION_CA_CERTIFICATE"] = CaPem,
        };
        if (_o.Https)
        {
            // Mutual TLS for the agents: the host asks for client certificates (operators call with a token alone) and
            // forwards them, and the app refuses a round call without the enrolled one.
            args.AddRange(["--cert", serverPfx, "--client-cert", "optional"]);
            environment["SERVERLESS_FEDERATION_CLIENT_CERTIFICATE"] = "required";
        }
        _log.WriteLine($"starting the local Functions host with the function app on {scheme}://127.0.0.1{(_o.Https ? " (agents on mutual TLS)" : "")} ...");
        _host = ChildProcess.StartDotnet("function host", launch.HostDll, args, Path.Combine(WorkDirectory, "host.log"), WorkDirectory, environment);
        BaseAddress = await _host.WaitListeningAsync(TimeSpan.FromSeconds(120), ct);
        _operator = CreateHttp(BaseAddress, operatorToken, CaPem);

        // Data: one generated non-IID hospital per agent; 25 % of each hospital goes to the operator's hold-out set.
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = _o.Clients, PatientsPerHospital = _o.Records, Visits = 8, Seed = _o.Seed });
        var holdOut = new List<PatientRecord>();
        var pooled = new List<PatientRecord>();
        var attackRounds = _o.AttackRounds ?? [Math.Max(1, (_o.Rounds + 1) / 2)];
        for (var i = 0; i < _o.Clients; i++)
        {
            var h = cohort.Hospitals[i];
            var patients = Importable(h.Patients);
            new Random(_o.Seed * 31 + i).Shuffle(patients);
            var cut = patients.Length / 4;
            holdOut.AddRange(patients[..cut]);
            pooled.AddRange(patients[cut..]);
            var id = $"hospital-{i + 1}";
            var dir = Path.Combine(WorkDirectory, "agents", id);
            Directory.CreateDirectory(dir);
            await using (var w = new StreamWriter(Path.Combine(dir, "data.csv"))) CohortCsv.Write(patients[cut..], w);
            var (pfx, _) = DevTools.IssueClientCertificate(OperatorDirectory, id);
            var local = Path.Combine(dir, "client.pfx");
            File.Copy(pfx, local, overwrite: true);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(local, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var attacker = i >= _o.Clients - _o.Attackers;   // the last ones attack
            _agents.Add(new AgentProcess(id, dir, clientDll, attacker, attacker ? string.Join(',', attackRounds) : null, this) { Records = patients.Length - cut });
        }
        _pooledTrain = new PatientCohort(cohort.Schema, pooled);
        _holdOut = holdOut;
        var holdOutCsv = new StringWriter();
        CohortCsv.Write(holdOut, holdOutCsv);

        foreach (var (federation, secure, _) in Federations())
        {
            await SendAsync(HttpMethod.Post, RoundRoutes.Federations(), JsonContent.Create(Config(federation, secure), options: RoundJson.Options), ct);
            await SendAsync(HttpMethod.Put, RoundRoutes.HoldOut(federation), new StringContent(holdOutCsv.ToString(), Encoding.UTF8, "text/csv"), ct);
            foreach (var agent in _agents) await agent.EnrollAsync(federation, ct);
        }
        _log.WriteLine($"host at {BaseAddress}; {_agents.Count} agents enrolled ({_o.Attackers} attacking in round(s) {string.Join(',', attackRounds)}); starting them");
        foreach (var agent in _agents.Skip(_o.InProcessAgents))
        {
            if (_o.AgentsInProcess) agent.StartInProcess();
            else agent.Start(CrashPlanOf(agent, afterRound: 0));
        }
    }

    /// <summary>The main federation (dropouts, attackers, the accuracy story) and, for the side-by-side round time and bytes, two clean ones.</summary>
    /// <summary>
    /// The generated patients that survive a cohort-CSV round trip: the generator's rare gross outliers can be
    /// written as values the importer refuses (e.g. "-0" for a glucose of ×0.3 rounding to zero), and an agent
    /// refuses to train on data with import errors. Those few patients are left out.
    /// </summary>
    private PatientRecord[] Importable(IReadOnlyList<PatientRecord> patients)
    {
        var csv = new StringWriter();
        CohortCsv.Write(patients, csv);
        var back = CohortCsv.Read(new StringReader(csv.ToString()), "generated.csv");
        if (back.RejectedPatients.Count > 0)
            _log.WriteLine($"note: {back.RejectedPatients.Count} generated patient(s) left out: the cohort CSV importer refuses them ({back.Errors[0]})");
        var keep = back.RejectedPatients.ToHashSet(StringComparer.Ordinal);
        return patients.Where(p => !keep.Contains(p.PatientId)).ToArray();
    }

    private IEnumerable<(string Federation, bool Secure, int Rounds)> Federations()
    {
        if (!_o.TimingOnly) yield return (MainFederation, _o.SecureAggregation, _o.Rounds);
        if (!_o.Compare && !_o.TimingOnly) yield break;
        var timing = _o.TimingOnly ? _o.Rounds : Math.Min(_o.Rounds, 2);   // round 1 also gathers the statistics; round 2 is a plain training round
        yield return (SecureTimingFederation, true, timing);
        yield return (PlainTimingFederation, false, timing);
    }

    private FederationConfig Config(string id, bool secure) => new()
    {
        Id = id,
        Model = new FederationModel { Steps = 8, ConvChannels = 8, LstmHidden = 8, InitSeed = _o.Seed },
        Training = new FederationTraining { LocalEpochs = id == MainFederation ? _o.LocalEpochs : _o.EffectiveTimingLocalEpochs, LearningRate = _o.LearningRate, ProximalMu = _o.ProximalMu, BatchSize = 32 },
        Privacy = new FederationPrivacy { Enabled = _o.DifferentialPrivacy && !_o.PatientLevelDp, EpsilonBudget = _o.EpsilonBudget, Delta = 1e-5, NoiseMultiplier = _o.EffectiveNoiseMultiplier, ClipNorm = _o.ClipNorm },
        SecureAggregation = new FederationSecureAggregation { Enabled = secure },
        MinClients = MinClients,
        Deadlines = _o.Deadlines,
        // The simulation's own hospitals are the roster (an empty one would admit nobody).
        AllowedClients = Enumerable.Range(1, _o.Clients).Select(i => $"hospital-{i}").ToArray(),
    };

    /// <summary>Patient mode: an agent's DP-SGD noise multiplier, calibrated for its own records.</summary>
    internal double PatientNoiseOf(AgentProcess agent) => _o.PatientNoiseMultiplier(agent.Records);

    /// <summary>The agents' own client-level DP floor: the federation's z when it runs client-level DP under secure aggregation, else none.</summary>
    internal double ClientNoiseFloor => _o.DifferentialPrivacy && !_o.PatientLevelDp && _o.SecureAggregation ? _o.EffectiveNoiseMultiplier : 0;

    /// <summary>
    /// An independent accountant's figure for the completed rounds (q = 1, z each) and, once the federation has statistics,
    /// their release (one Gaussian step at the statistics z; decision 0023).
    /// </summary>
    private static double ClientLevelEpsilon(FederationView view, int completed)
    {
        var p = view.Config.Privacy;
        var steps = Enumerable.Repeat((1.0, p.NoiseMultiplier), completed).ToList();
        if (view.StatisticsReady) steps.Add((1.0, p.StatisticsNoiseMultiplier));
        return new PrivacyBudget(double.MaxValue, p.Delta).EpsilonAfter(steps);
    }

    /// <summary>Patient mode: the largest per-patient epsilon any agent's own account shows.</summary>
    private double PatientEpsilonSpent()
    {
        var worst = 0.0;
        foreach (var agent in _agents)
        {
            var path = Path.Combine(agent.Directory, PatientPrivacy.FileName);
            if (!File.Exists(path)) continue;
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
            worst = Math.Max(worst, doc.RootElement.GetProperty("Epsilon").GetDouble());
        }
        return worst;
    }

    /// <summary>Agent poll interval: the option, stretched with many agents so that polling does not crowd out the round's work.</summary>
    public int AgentPollMilliseconds => Math.Max(_o.PollMilliseconds, 15 * _o.Clients);

    /// <summary>Survivors a round needs: half the clients (at least 2), so one killed agent never fails a round of 4.</summary>
    public int MinClients => Math.Max(2, (_o.Clients + 1) / 2);

    /// <summary>Runs the rounds on the main federation (with dropouts) and on the comparison federation (without), then measures.</summary>
    public async Task<SimulationReport> RunAsync(IAgentProgress progress, CancellationToken ct)
    {
        var rounds = new List<ObservedRound>();
        var rng = new Random(_o.Seed * 7919);
        var total = Federations().Sum(f => f.Rounds);
        var done = 0;
        foreach (var (federation, _, count) in Federations())
        {
            for (var r = 1; r <= count; r++)
            {
                var victims = federation != MainFederation ? []
                    : _o.Kills is { } kills ? _agents.Where(a => kills.TryGetValue(r, out var ids) && ids.Contains(a.Id)).ToList()
                    : PickVictims(rng);
                progress.Step("simulation", done + 1, $"{federation} round {r}" + (victims.Count > 0 ? $" (will kill {string.Join(", ", victims.Select(v => v.Id))})" : ""), done, total);
                var observed = await RunRoundAsync(federation, r, victims, ct);
                rounds.Add(observed);
                done++;
                var s = observed.Status;
                var why = s.Reason is { Length: > 0 } reason ? "; " + reason : "";
                progress.Note(string.Create(CultureInfo.InvariantCulture,
                    $"{federation} round {r}: {s.Phase.ToString().ToLowerInvariant()} in {observed.WallTime.TotalSeconds:F1} s; version {s.NewVersion ?? "-"}{(s.Promoted ? " promoted" : "")}; dropouts {s.Dropouts.Length}; excluded {s.Excluded.Length}; epsilon {s.EpsilonSpent:F3}{why}"));
                if (_receiver is not null && federation == MainFederation && await CriticalPathAsync(federation, r, ct) is { } path) progress.Note(path.TrimEnd());
                if (s.Phase == RoundPhase.Refused) break;
            }
        }
        progress.Step("simulation", total, "measuring", total, total);
        return await MeasureAsync(rounds, ct);
    }

    /// <summary>
    /// An explicit kill plan, for an agent process: it crashes itself (exit code 137, as after a SIGKILL) right
    /// before sending its shares in the main federation's training stage of each planned round after
    /// <paramref name="afterRound"/>, so the kill never depends on catching that phase by polling.
    /// </summary>
    private string? CrashPlanOf(AgentProcess agent, int afterRound)
    {
        if (_o.Kills is not { } kills || _o.AgentsInProcess) return null;
        var points = kills.Where(k => k.Key > afterRound && k.Value.Contains(agent.Id)).Select(k => k.Key).Order()
            .Select(r => CrashPlan.Format(MainFederation, r, RoundStages.Training, RoundPhase.ShareKeys)).ToList();
        return points.Count == 0 ? null : string.Join(',', points);
    }

    private List<AgentProcess> PickVictims(Random rng)
    {
        var victims = _agents.Skip(_o.InProcessAgents).Where(_ => rng.NextDouble() < _o.Dropout).ToList();
        while (_agents.Count - victims.Count < MinClients) victims.RemoveAt(victims.Count - 1);
        return victims;
    }

    private async Task<ObservedRound> RunRoundAsync(string federation, int round, List<AgentProcess> victims, CancellationToken ct)
    {
        // The previous round's orchestration may still be finishing (audit) after its status says Completed: 409 "A round is running" is retried.
        var startBy = Stopwatch.GetTimestamp() + 120 * Stopwatch.Frequency;
        long start;
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, RoundRoutes.Rounds(federation))
            {
                Content = JsonContent.Create(new StartRoundRequest("simulation"), options: RoundJson.Options),
            };
            start = Stopwatch.GetTimestamp();
            // The round's trace starts here: the host, the worker, the orchestration and the agents continue it.
            using var span = ServerlessTelemetry.Source.StartActivity("operator start round", ActivityKind.Client, default(ActivityContext),
                [new("serverless.federation", federation), new("serverless.round", round)]);
            using var response = await Operator.SendAsync(request, ct);
            if (response.StatusCode == HttpStatusCode.Accepted) break;
            var text = await response.Content.ReadAsStringAsync(ct);
            if (response.StatusCode != HttpStatusCode.Conflict || !text.Contains("A round is running", StringComparison.Ordinal) || Stopwatch.GetTimestamp() > startBy)
                throw new InvalidOperationException($"starting round {round} of {federation}: {(int)response.StatusCode} {Serverless.Client.Commands.Cli.OneLine(text.Length > 400 ? text[..400] : text)}");
            await Task.Delay(StatusPollInterval, ct);
        }
        var killed = new List<string>();
        var planned = federation == MainFederation && _o.Kills is not null && !_o.AgentsInProcess;
        var deadline = Stopwatch.GetTimestamp() + (long)(_o.RoundTimeout.TotalSeconds * Stopwatch.Frequency);
        RoundStatus status;
        while (true)
        {
            status = await GetAsync<RoundStatus>(RoundRoutes.Round(federation, round), ct);
            if (status.Phase is RoundPhase.Completed or RoundPhase.Failed or RoundPhase.Refused) break;
            // A dropout: the victims are killed once they are committed to the training stage's secure aggregation.
            if (planned)
            {
                // An explicit plan: the victims crash themselves before sending their shares (CrashPlanOf).
                foreach (var v in victims.Where(v => !killed.Contains(v.Id) && v.Exited)) killed.Add(v.Id);
            }
            else if (killed.Count < victims.Count && status.Stage == RoundStages.Training && status.Phase >= RoundPhase.ShareKeys)
            {
                foreach (var v in victims)
                {
                    v.Kill();
                    killed.Add(v.Id);
                }
            }
            if (Stopwatch.GetTimestamp() > deadline) throw new TimeoutException($"round {round} of {federation} did not finish within {_o.RoundTimeout.TotalSeconds:F0} s (phase {status.Phase}); see {WorkDirectory}");
            await Task.Delay(StatusPollInterval, ct);   // the host allows 600 polls a minute per caller on this endpoint
        }
        var wall = Stopwatch.GetElapsedTime(start);
        if (planned)
        {
            foreach (var v in victims.Where(v => !killed.Contains(v.Id)))
            {
                // It may still be exiting; one that never reached its crash point (e.g. the round ended first) is killed now.
                if (!await v.WaitForExitAsync(TimeSpan.FromSeconds(30))) v.Kill();
                killed.Add(v.Id);
            }
        }
        foreach (var v in victims.Where(v => killed.Contains(v.Id))) v.Start(CrashPlanOf(v, afterRound: round));   // the agent resumes from its sealed state
        var attacked = _agents.Any(a => a.Attacker && a.AttackRounds!.Split(',').Contains(round.ToString(CultureInfo.InvariantCulture)));
        return new ObservedRound(federation, round, status, wall, killed, attacked);
    }

    private async Task<SimulationReport> MeasureAsync(List<ObservedRound> rounds, CancellationToken ct)
    {
        var main = rounds.Where(r => r.Federation == MainFederation).ToList();
        var measured = _o.TimingOnly ? (_o.SecureAggregation ? SecureTimingFederation : PlainTimingFederation) : MainFederation;
        var view = await GetAsync<FederationView>(RoundRoutes.Federation(measured), ct);
        var models = await GetAsync<ModelVersionList>(RoundRoutes.Models(measured), ct);
        var current = models.Versions.FirstOrDefault(v => v.Version == models.Current);
        double? fedAuroc = current is not null && current.Metrics.TryGetValue("auroc", out var a) ? a : null;
        double? fedAccuracy = current is not null && current.Metrics.TryGetValue("accuracy", out var acc) ? acc : null;
        if (_o.TimingOnly) main = rounds.Where(r => r.Federation == measured).ToList();

        // The central baseline: the same model trained on the pooled training data of every hospital (what federation avoids).
        var (centralAuroc, centralAccuracy) = _o.TimingOnly ? (double.NaN, double.NaN) : await Task.Run(() => CentralBaseline(view.Config), ct);

        var completed = main.Count(r => r.Status.Phase == RoundPhase.Completed);
        var epsilonAccountant = _o.DifferentialPrivacy && completed > 0
            ? _o.PatientLevelDp ? PatientEpsilonSpent() : ClientLevelEpsilon(view, completed)
            : 0;
        double? Metric(IEnumerable<ObservedRound> rs, string key)
        {
            var values = rs.Where(r => r.Status.Metrics.ContainsKey(key)).Select(r => r.Status.Metrics[key]).ToList();
            return values.Count == 0 ? null : values.Average();
        }
        var secureTiming = rounds.Where(r => r.Federation == SecureTimingFederation).ToList();
        var plainTiming = rounds.Where(r => r.Federation == PlainTimingFederation).ToList();
        // Round time without dropouts (a killed agent makes a phase wait for its deadline) and after round 1 (which also gathers statistics).
        double? CleanSeconds(List<ObservedRound> rs)
        {
            var clean = rs.Where(r => r.Status.Phase == RoundPhase.Completed && r.Killed.Count == 0 && (r.Round > 1 || rs.Count == 1)).Select(r => r.WallTime.TotalSeconds).Order().ToList();
            if (clean.Count == 0) clean = rs.Where(r => r.Status.Phase == RoundPhase.Completed && r.Killed.Count == 0).Select(r => r.WallTime.TotalSeconds).Order().ToList();
            return clean.Count == 0 ? null : clean[clean.Count / 2];
        }
        var secureRounds = _o.Compare ? secureTiming : _o.SecureAggregation ? main : [];
        var plainRounds = _o.Compare ? plainTiming : _o.SecureAggregation ? [] : main;
        var otherMode = _o.SecureAggregation ? plainTiming : secureTiming;
        var dropouts = main.Sum(r => r.Status.Dropouts.Count(d => d.Stage == RoundStages.Training));
        var recovered = main.Where(r => r.Status.Phase == RoundPhase.Completed).Sum(r => r.Status.Dropouts.Count(d => d.Stage == RoundStages.Training));
        var attacked = rounds.Where(r => r.Attacked).ToList();
        var attackers = _agents.Where(x => x.Attacker).Select(x => x.Id).ToHashSet();
        // Contained: a secure round whose version was not promoted (norm check or gate), or a visible round whose attacker updates were excluded.
        var contained = attacked.Count(r => !r.Status.Promoted || r.Status.Excluded.Any(e => attackers.Contains(e.ClientId)));
        var flagged = rounds.Sum(r => r.Status.Excluded.Count(e => attackers.Contains(e.ClientId)));
        return new SimulationReport(_o, MainFederation, _o.Compare ? (_o.SecureAggregation ? PlainTimingFederation : SecureTimingFederation) : null,
            centralAuroc, centralAccuracy, fedAuroc, fedAccuracy, models.Current,
            _o.PatientLevelDp ? epsilonAccountant : view.EpsilonSpent, epsilonAccountant, completed,
            Metric(main, "bytesPlainPerClient") ?? 0, Metric(main, "bytesUploadedPerClient"), Metric(otherMode, "bytesUploadedPerClient"),
            CleanSeconds(secureRounds), CleanSeconds(plainRounds),
            main.Sum(r => r.Killed.Count), dropouts, recovered, attacked.Count, contained, flagged, rounds)
        {
            PatientNoiseMultipliers = _o.DifferentialPrivacy && _o.PatientLevelDp ? (_agents.Min(PatientNoiseOf), _agents.Max(PatientNoiseOf)) : null,
        };
    }

    private (double Auroc, double Accuracy) CentralBaseline(FederationConfig config)
    {
        var pooled = _pooledTrain!;
        var pre = Preprocessor.Fit(pooled.Schema, pooled.Patients, config.Model.Steps);
        var train = pre.Transform(pooled.Patients);
        var test = pre.Transform(_holdOut!);
        var modelConfig = FederationRules.ModelConfigOf(config);
        var model = new CnnLstm(modelConfig);
        var trainer = new Trainer(model, new TrainerOptions
        {
            Optimizer = OptimizerKind.Adam, LearningRate = _o.CentralLearningRate, Epochs = 30, BatchSize = 32, Seed = _o.Seed, Patience = 4, ValidationFraction = 0.15,
        });
        var result = trainer.Train(train, model.InitializeParameters(config.Model.InitSeed));
        var report = Metrics.Evaluate(model, result.Parameters, test);
        return (report.Auroc, report.Accuracy);
    }

    internal async Task<T> GetAsync<T>(string path, CancellationToken ct)
    {
        using var response = await SendAsync(HttpMethod.Get, path, null, ct);
        return await response.Content.ReadFromJsonAsync<T>(RoundJson.Options, ct) ?? throw new InvalidDataException($"GET {path}: empty answer");
    }

    internal async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        var response = await Operator.SendAsync(request, ct);
        if (!response.IsSuccessStatusCode)
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            response.Dispose();
            throw new InvalidOperationException($"{method} {path}: {(int)response.StatusCode} {Serverless.Client.Commands.Cli.OneLine(text.Length > 400 ? text[..400] : text)}");
        }
        return response;
    }

    /// <summary>An operator HTTP client: trusts only the dev CA (HTTPS) and sends the bearer token.</summary>
    /// <param name="clientCertificate">Presented over HTTPS: an agent's calls need it on mutual TLS; an operator's go without.</param>
    internal static HttpClient CreateHttp(Uri baseAddress, string token, string caPem, X509Certificate2? clientCertificate = null)
    {
        var trust = baseAddress.Scheme == Uri.UriSchemeHttps ? new CertificateTrust(X509Certificate2.CreateFromPem(File.ReadAllText(caPem))) : null;
        var http = ClientHttp.Create("operator", baseAddress, TimeSpan.FromMinutes(3), trust, clientCertificate);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    /// <summary>
    /// The critical path of a round, from the spans of its trace (the orchestration emits the round's span when
    /// it ends; its export may take a moment), or null when they did not arrive.
    /// </summary>
    private async Task<string?> CriticalPathAsync(string federation, int round, CancellationToken ct)
    {
        var until = Stopwatch.GetTimestamp() + 10 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < until)
        {
            var root = _receiver!.Spans.FirstOrDefault(s => s.Name == "round" && s.Attribute("serverless.federation") == federation
                && s.Attribute("serverless.round") == round.ToString(CultureInfo.InvariantCulture));
            if (root is not null)
            {
                var trace = _receiver.Spans.Where(s => s.TraceId == root.TraceId).ToList();
                return "critical path of " + CriticalPath.Format(root, CriticalPath.Of(trace, root));
            }
            await Task.Delay(200, ct);
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var a in _agents) a.Dispose();
        _host?.Dispose();
        _operator?.Dispose();
        _telemetry?.Dispose();
        if (_receiver is not null) await _receiver.DisposeAsync();
        await Task.Yield();
        if (_ownsWork && !_o.Keep)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(WorkDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>One hospital agent: its directory, certificate, data, and its process (started, killed, restarted).</summary>
    internal sealed class AgentProcess(string id, string directory, string clientDll, bool attacker, string? attackRounds, SimulationRunner owner) : IDisposable
    {
        private ChildProcess? _process;

        public string Id { get; } = id;
        public string Directory { get; } = directory;
        public bool Attacker { get; } = attacker;
        public string? AttackRounds { get; } = attackRounds;
        public int Starts { get; private set; }

        /// <summary>The agent's local training records (patients in its data file).</summary>
        public int Records { get; init; }

        public bool Running => _process is { HasExited: false };

        /// <summary>Enrolls through the same command a hospital runs (in process: it only talks HTTP).</summary>
        public async Task EnrollAsync(string federation, CancellationToken ct)
        {
            using var output = new StringWriter();
            using var error = new StringWriter();
            var args = new List<string> { "agent", "enroll", "--dir", Directory, "--server", owner.BaseAddress!.ToString(), "--federation", federation, "--certificate", Path.Combine(Directory, "client.pfx") };
            if (owner.BaseAddress!.Scheme == Uri.UriSchemeHttps) { args.Add("--ca"); args.Add(owner.CaPem); }
            // Enrollment is anonymous, so the host's rate limit counts every agent on this address together (120 a
            // minute per endpoint); the agent's client waits out a 429's Retry-After itself (ClientHttp).
            if (await ClientProgram.RunAsync(args.ToArray(), output, error) != 0)
                throw new InvalidOperationException($"{Id} could not enroll in {federation}: {error.ToString().Trim()}");
        }

        /// <summary>The agent process has exited (e.g. it crashed itself as planned).</summary>
        public bool Exited => _process is { HasExited: true };

        public async Task<bool> WaitForExitAsync(TimeSpan timeout)
        {
            if (_process is null) return false;
            try
            {
                await _process.WaitForExitAsync(timeout);
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        /// <summary>Starts the agent process; <paramref name="crashBefore"/> is its <see cref="CrashPlan"/> (null: none).</summary>
        public void Start(string? crashBefore = null)
        {
            _process?.Dispose();
            var args = new List<string> { "agent", "run", "--dir", Directory, "--data", Path.Combine(Directory, "data.csv"), "--poll-ms", owner.AgentPollMilliseconds.ToString(CultureInfo.InvariantCulture) };
            if (Attacker)
            {
                args.AddRange(["--attack", string.Create(CultureInfo.InvariantCulture, $"scale:{owner._o.AttackFactor}")]);
                if (AttackRounds is { Length: > 0 }) args.AddRange(["--attack-rounds", AttackRounds]);
            }
            if (owner._o.DifferentialPrivacy && owner._o.PatientLevelDp)
                args.AddRange(string.Create(CultureInfo.InvariantCulture,
                    $"--dp-mode patient --patient-epsilon {owner._o.EpsilonBudget} --patient-delta 1e-5 --dp-clip {owner._o.DpClipNorm} --dp-noise {owner.PatientNoiseOf(this)} --dp-batch {owner._o.DpBatchSize}").Split(' '));
            if (owner.ClientNoiseFloor is > 0 and var z) args.AddRange(["--min-update-noise", z.ToString("R", CultureInfo.InvariantCulture)]);
            _process = ChildProcess.StartDotnet(Id, clientDll, args, Path.Combine(Directory, "agent.log"), Directory,
                new Dictionary<string, string?>(owner.TelemetryEnvironment) { [AgentKeys.MasterKeyVariable] = null, ["NO_COLOR"] = "1", [CrashPlan.Variable] = crashBefore });
            Starts++;
        }

        private CancellationTokenSource? _inProcess;
        private Task? _inProcessRun;

        /// <summary>Runs the agent as a task in this process: the same code as <c>agent run</c>, over its own HTTPS client.</summary>
        public void StartInProcess()
        {
            _inProcess = new CancellationTokenSource();
            var ct = _inProcess.Token;
            Starts++;
            _inProcessRun = Task.Run(async () =>
            {
                await using var log = new StreamWriter(Path.Combine(Directory, "agent.log"), append: true) { AutoFlush = true };
                var progress = new LineProgress(TextWriter.Synchronized(log));
                try
                {
                    var config = AgentConfig.Load(Directory);
                    using var certificate = AgentCommands.LoadCertificate(config.Certificate);
                    using var keys = await AgentKeys.OpenAsync(Directory, ct);
                    using var http = AgentCommands.CreateHttpClient(config, certificate);
                    var attack = Attacker ? new Attack(AttackMode.Scale, owner._o.AttackFactor).InRounds(AttackRounds) : Attack.None;
                    var patient = owner._o.DifferentialPrivacy && owner._o.PatientLevelDp
                        ? PatientPrivacy.Open(new PatientPrivacySettings(owner._o.DpClipNorm, owner.PatientNoiseOf(this), owner._o.DpBatchSize, 1e-5, owner._o.EpsilonBudget), Directory)
                        : null;
                    var pipeline = new LocalUpdatePipeline(LocalData.Load(LocalDataFormat.Csv, [Path.Combine(Directory, "data.csv")]), attack, patient);
                    using var agent = new FederationAgent(Directory, config, keys, new RoundsClient(http), certificate, pipeline,
                        new AgentRunOptions { PollInterval = TimeSpan.FromMilliseconds(owner.AgentPollMilliseconds), MinUpdateNoiseMultiplier = owner.ClientNoiseFloor }, progress);
                    await agent.RunAsync(ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                }
                catch (Exception e)
                {
                    progress.Note($"agent {Id} failed: {e.GetType().Name}: {e.Message}");
                }
            }, ct);
        }

        /// <summary>SIGKILL: a crash mid-round (in process: the agent's loop is cancelled).</summary>
        public void Kill()
        {
            _process?.Kill();
            _inProcess?.Cancel();
        }

        public void Dispose()
        {
            _process?.Dispose();
            if (_inProcess is not null)
            {
                _inProcess.Cancel();
                try { _inProcessRun?.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
                _inProcess.Dispose();
            }
        }
    }
}
