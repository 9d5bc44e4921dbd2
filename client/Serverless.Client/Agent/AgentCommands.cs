namespace Serverless.Client.Agent;

/// <summary>
/// <c>agent enroll | run | status</c>: the hospital agent. The agent directory holds agent.json (public
/// settings), its own keyring (keyring.bin + master.key, 0600), the sealed credentials and round state,
/// and rounds.jsonl (what it did per round).
/// </summary>
internal static class AgentCommands
{
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                                              | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    public static Command Create()
    {
        var agent = new Command("agent", "The hospital agent: enrolls with its certificate, trains locally, answers every phase of each round");
        agent.Subcommands.Add(Enroll());
        agent.Subcommands.Add(Run());
        agent.Subcommands.Add(Status());
        return agent;
    }

    private static Option<DirectoryInfo> DirOption() => new("--dir") { Description = "The agent directory (agent.json, keyring, sealed state)", Required = true };

    private static Command Enroll()
    {
        var dir = DirOption();
        var server = new Option<string>("--server") { Description = "Base URL of the function host, e.g. https://127.0.0.1:7071", Required = true };
        var federation = new Option<string>("--federation") { Description = "Federation id", Required = true };
        var certificate = new Option<FileInfo>("--certificate") { Description = "Client certificate with its key (PKCS#12 from 'admin ca client', 0600); its CN is the client id", Required = true };
        var trust = new Option<FileInfo?>("--ca") { Description = "Dev CA certificate (PEM) the server's TLS certificate must chain to (required for https)" };
        var cmd = new Command("enroll", "Enroll in a federation: sign the server's challenge with the certificate's key; the token is sealed in the agent directory")
            { dir, server, federation, certificate, trust };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var directory = r.GetValue(dir)!.FullName;
            var fed = r.GetValue(federation)!;
            var certPath = r.GetValue(certificate)!.FullName;
            using var cert = LoadCertificate(certPath);
            var existing = File.Exists(AgentConfig.PathIn(directory)) ? AgentConfig.Load(directory) : null;
            var clientId = FederationAgent.ClientIdOf(cert);
            if (existing is not null && existing.ClientId != clientId)
                throw new InvalidOperationException($"{directory} belongs to client '{existing.ClientId}', the certificate names '{clientId}'");
            var config = new AgentConfig
            {
                Server = NormalizeServer(r.GetValue(server)!),
                Certificate = certPath,
                Trust = r.GetValue(trust)?.FullName ?? existing?.Trust,
                ClientId = clientId,
                Federations = existing?.Federations ?? [],
            };
            using var keys = await AgentKeys.OpenAsync(directory, ct);
            using var http = CreateHttpClient(config, cert);
            var credentials = await FederationAgent.EnrollAsync(new RoundsClient(http), cert, fed, directory, keys, ct);
            if (!config.Federations.Contains(fed, StringComparer.Ordinal)) config.Federations.Add(fed);
            config.Save(directory);
            Console.WriteLine($"enrolled {credentials.ClientId} in {fed}: secure-aggregation id {credentials.SecAggId}, certificate {credentials.CertificateThumbprint}, token valid until {credentials.TokenExpiresAt:u}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Run()
    {
        var dir = DirOption();
        var data = new Option<string[]>("--data") { Description = "Local data files or directories (repeatable); they never leave this machine", Required = true, AllowMultipleArgumentsPerToken = false };
        var format = new Option<string>("--format") { Description = "csv (cohort CSV), kaggle or fhir", DefaultValueFactory = _ => "csv" }.AcceptOnlyFromAmong("csv", "kaggle", "fhir");
        var keyFile = new Option<FileInfo?>("--pseudonym-key") { Description = "Key (>= 32 bytes, raw or hex) for pseudonymizing kaggle/fhir identifiers on import" };
        var attack = new Option<string>("--attack") { Description = "Testing only: corrupt this agent's update (none, scale[:factor], flip[:factor])", DefaultValueFactory = _ => "none" };
        var attackRounds = new Option<string?>("--attack-rounds") { Description = "Testing only: rounds to attack in, comma-separated (default: every round)" };
        var poll = new Option<int>("--poll-ms") { Description = "Milliseconds between polls when idle", DefaultValueFactory = _ => 500 };
        var rounds = new Option<int>("--rounds") { Description = "Exit after this many rounds finished (0 = run until stopped)", DefaultValueFactory = _ => 0 };
        var bits = new Option<int>("--quantize-bits") { Description = "Stochastic quantization of a visible update (secure aggregation off): bits per entry, 0 = float32", DefaultValueFactory = _ => 8 };
        var dpMode = new Option<string>("--dp-mode") { Description = "client: only the server's client-level DP (clip and noise the whole update); patient: also DP-SGD over the local records with a per-patient budget kept here", DefaultValueFactory = _ => "client" }.AcceptOnlyFromAmong("client", "patient");
        var patientEpsilon = new Option<double>("--patient-epsilon") { Description = "Patient mode: per-patient epsilon this agent never exceeds, over all rounds", DefaultValueFactory = _ => 8 };
        var patientDelta = new Option<double>("--patient-delta") { Description = "Patient mode: delta of the per-patient guarantee (below 1 / local records)", DefaultValueFactory = _ => 1e-5 };
        var dpClip = new Option<double>("--dp-clip") { Description = "Patient mode: L2 bound C on each record's gradient", DefaultValueFactory = _ => 1.0 };
        var dpNoise = new Option<double>("--dp-noise") { Description = "Patient mode: noise multiplier sigma (std sigma*C on each step's sum)", DefaultValueFactory = _ => 1.0 };
        var dpBatch = new Option<int>("--dp-batch") { Description = "Patient mode: expected Poisson batch size L (sampling rate L / records)", DefaultValueFactory = _ => 32 };
        var honestButCurious = new Option<bool>("--allow-honest-but-curious-server") { Description = "Also take part in secure aggregation without signed keys and a consistency check (it holds only if the server is honest)" };
        var minNoise = new Option<double>("--min-update-noise") { Description = "Client-level DP floor z of this agent: refuse a secure training round whose noise share is below z times the clip norm (0 = none)", DefaultValueFactory = _ => 0 };
        var cmd = new Command("run", "Poll the enrolled federations and answer every round until stopped (Ctrl+C); resumes a round after a restart")
            { dir, data, format, keyFile, attack, attackRounds, poll, rounds, bits, dpMode, patientEpsilon, patientDelta, dpClip, dpNoise, dpBatch, honestButCurious, minNoise };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var directory = r.GetValue(dir)!.FullName;
            var config = AgentConfig.Load(directory);
            if (r.GetValue(poll) is < 10 or > 600_000) throw new ArgumentException("--poll-ms must be between 10 and 600000");
            if (r.GetValue(bits) is < 0 or > 16) throw new ArgumentException("--quantize-bits must be between 0 and 16");
            if (r.GetValue(rounds) < 0) throw new ArgumentException("--rounds must not be negative");
            if (!(r.GetValue(minNoise) is >= 0 and <= 1000)) throw new ArgumentException("--min-update-noise must be between 0 and 1000");
            var cohort = LocalData.Load(LocalData.ParseFormat(r.GetValue(format)!), r.GetValue(data)!, ReadKey(r.GetValue(keyFile)));
            var patient = r.GetValue(dpMode) == "patient"
                ? PatientPrivacy.Open(new PatientPrivacySettings(r.GetValue(dpClip), r.GetValue(dpNoise), r.GetValue(dpBatch), r.GetValue(patientDelta), r.GetValue(patientEpsilon)), directory)
                : null;
            var pipeline = new LocalUpdatePipeline(cohort, Attack.Parse(r.GetValue(attack)).InRounds(r.GetValue(attackRounds)), patient);
            using var cert = LoadCertificate(config.Certificate);
            using var keys = await AgentKeys.OpenAsync(directory, ct);
            using var http = CreateHttpClient(config, cert);
            var options = new AgentRunOptions { PollInterval = TimeSpan.FromMilliseconds(r.GetValue(poll)), MaxRounds = r.GetValue(rounds), QuantizationBits = r.GetValue(bits),
                CrashAt = CrashPlan.Parse(Environment.GetEnvironmentVariable(CrashPlan.Variable)), AllowHonestButCuriousServer = r.GetValue(honestButCurious),
                MinUpdateNoiseMultiplier = r.GetValue(minNoise) };
            Console.WriteLine($"agent {config.ClientId}: {cohort.Patients.Count} local patients; federations {string.Join(", ", config.Federations)}; server {config.Server}" +
                              (patient is null ? "" : string.Create(CultureInfo.InvariantCulture, $"; patient-level DP (DP-SGD C = {patient.Settings.ClipNorm}, sigma = {patient.Settings.NoiseMultiplier}, L = {patient.Settings.ExpectedBatchSize}; per-patient epsilon {patient.Budget.EpsilonSpent:F3} of {patient.Settings.EpsilonBudget} at delta {patient.Settings.Delta:G3})")) +
                              (pipeline.Attack.IsAttacking ? $"; ATTACKING ({pipeline.Attack})" : ""));
            return await SpectreProgress.RunAsync(async progress =>
            {
                using var agent = new FederationAgent(directory, config, keys, new RoundsClient(http), cert, pipeline, options, progress);
                try
                {
                    await agent.RunAsync(ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    progress.Note("stopped; the round state is sealed on disk and resumes on the next run");
                }
                return Cli.Ok;
            });
        }));
        return cmd;
    }

    private static Command Status()
    {
        var dir = DirOption();
        var cmd = new Command("status", "Show the enrollments, the sealed round state and the last rounds (no secrets)") { dir };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var directory = r.GetValue(dir)!.FullName;
            var config = AgentConfig.Load(directory);
            using var keys = await AgentKeys.OpenAsync(directory, ct);
            Console.WriteLine($"client {config.ClientId}; server {config.Server}; certificate {config.Certificate}");
            foreach (var federation in config.Federations)
            {
                var credentials = await FederationAgent.CredentialsFile(directory, federation, keys).LoadAsync(ct);
                var progress = await FederationAgent.ProgressFile(directory, federation, keys).LoadAsync(ct);
                Console.WriteLine(credentials is null
                    ? $"{federation}: not enrolled"
                    : $"{federation}: secure-aggregation id {credentials.SecAggId}, token valid until {credentials.TokenExpiresAt:u}");
                if (progress is not null)
                {
                    var stages = string.Join(", ", progress.Stages.Select(s => $"{s.Key} sent {s.Value.LastSent}{(s.Value.Abandoned ? " (dropped out)" : "")}"));
                    Console.WriteLine($"  round {progress.Round}: {(progress.Finished ? "finished, " + progress.Outcome : "in progress")}" +
                                      (stages.Length > 0 ? "; " + stages : "") + (progress.Update is null ? "" : "; local update trained") +
                                      (progress.Restarts > 0 ? $"; {progress.Restarts} restart(s)" : ""));
                }
            }
            var log = FederationAgent.LogPath(directory);
            if (File.Exists(log))
            {
                foreach (var line in File.ReadLines(log).TakeLast(10))
                {
                    var e = JsonSerializer.Deserialize<RoundLogEntry>(line, AgentJson.Options);
                    if (e is not null)
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {e.Federation} round {e.Round}: {e.Outcome}; sent {e.BytesSent} B (plain update {e.BytesPlain} B); trained {e.TrainingSeconds:F2} s on {e.Examples} sequences"));
                }
            }
            if (PatientPrivacy.Summary(directory) is { } privacy) Console.WriteLine(privacy);
            return Cli.Ok;
        }));
        return cmd;
    }

    /// <summary>
    /// An HTTP client for the server: HTTPS trusting only the dev CA (and presenting the client certificate
    /// for mutual TLS), or plain HTTP to a loopback address only (a development host without TLS).
    /// </summary>
    internal static HttpClient CreateHttpClient(AgentConfig config, X509Certificate2 certificate, DelegatingHandler? outermost = null)
    {
        var uri = new Uri(config.Server);
        CertificateTrust? trust = null;
        if (uri.Scheme == Uri.UriSchemeHttps)
        {
            if (config.Trust is null) throw new ArgumentException("an https server needs --ca (the dev CA certificate its TLS certificate chains to)");
            trust = new CertificateTrust(X509Certificate2.CreateFromPem(File.ReadAllText(config.Trust)));
        }
        else if (!(uri.IsLoopback || (IPAddress.TryParse(uri.Host, out var ip) && IPAddress.IsLoopback(ip))))
        {
            throw new ArgumentException($"refusing plain HTTP to {uri.Host}: only a loopback development host may go without TLS");
        }
        // Three minutes for a call and its retries (a 429's Retry-After is waited out; ClientHttp).
        return ClientHttp.Create("agent", uri, TimeSpan.FromMinutes(3), trust, certificate, outermost);
    }

    /// <summary>Loads the client certificate with its private key; refuses a key file others can read.</summary>
    internal static X509Certificate2 LoadCertificate(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"no certificate at {path}");
        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & GroupOrOther) != 0)
            throw new UnauthorizedAccessException($"refusing {path}: its private key is readable by others (run: chmod 600 {path})");
        var certificate = X509CertificateLoader.LoadPkcs12FromFile(path, null, X509KeyStorageFlags.EphemeralKeySet);
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new InvalidDataException($"{path} holds no private key");
        }
        return certificate;
    }

    private static string NormalizeServer(string server)
    {
        if (!Uri.TryCreate(server, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
            throw new ArgumentException($"'{server}' is not an http(s) URL");
        return uri.GetLeftPart(UriPartial.Authority) + "/";
    }

    private static byte[]? ReadKey(FileInfo? keyFile)
    {
        if (keyFile is null) return null;
        var raw = File.ReadAllBytes(keyFile.FullName);
        var text = System.Text.Encoding.ASCII.GetString(raw).Trim();
        return text.Length >= 64 && text.All(Uri.IsHexDigit) ? Convert.FromHexString(text) : raw;
    }
}
