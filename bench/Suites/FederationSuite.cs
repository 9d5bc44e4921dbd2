using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Serverless.Federation.Compression;
using Serverless.Federation.Privacy;
using Serverless.Federation.Rounds;
using Serverless.Federation.SecureAggregation;
using Serverless.Federation.Simulation;
using Serverless.Federation.Strategies;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Bench.Suites;

/// <summary>
/// Federated-learning figures: secure-aggregation server and client time (Bonawitz et al. 2017's
/// setting: 100,000 32-bit entries, n = 100 / 500, 0 % and 10 % dropouts after key sharing;
/// SecAgg+ at n = 1,000), bytes per client per round, the round-time overhead of secure
/// aggregation in a simulated CNN-LSTM round, and federated vs central AUROC (plus DP cost).
/// In --quick, the micro-rounds use 10,000-entry updates (same client counts and dropout cases), and the clients whose work is not being timed are played by a dealer that makes
/// well-formed messages (real keys, real Shamir shares and commitments, random masked inputs) so
/// that every step of the server's work is real; the full run uses real clients everywhere and
/// checks the secure sum against the plain one.
/// </summary>
internal sealed class FederationSuite : IBenchSuite
{
    public string Name => "federation";

    private const int VectorLength = 100_000;

    /// <summary>
    /// Entries per update in the secure-aggregation micro-rounds: 100,000 (Bonawitz et al.'s setting) in the full run;
    /// 10,000 in --quick, which keeps every client count and dropout case but cuts the mask expansion 10x so the
    /// quick run fits in a minute (the byte figures below are always computed for 100,000 entries).
    /// </summary>
    private const int QuickVectorLength = 10_000;

    public Task<int> RunAsync(BenchOptions options)
    {
        var quick = options.Quick;
        var length = quick ? QuickVectorLength : VectorLength;
        var f = new List<(string Key, object Value)>();
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}; mode {(quick ? "quick" : "full")}; secure-aggregation micro-rounds with {length:N0}-entry updates");

        // --- SecAgg, n = 100, real clients, exact-sum check.
        foreach (var drop in new[] { 0.0, 0.1 })
        {
            var (server, client) = RealRound(100, drop, plus: false, length);
            var key = drop == 0 ? "" : "_drop10";
            f.Add(($"secagg_server_ms_n100{key}", server));
            if (drop == 0) f.Add(("secagg_client_ms_n100", client));
        }

        // --- SecAgg, n = 500.
        {
            var p = Parameters(500, plus: false, length);
            var dealer = quick ? new Dealer(p) : null;
            foreach (var drop in new[] { 0.0, 0.1 })
            {
                var key = drop == 0 ? "" : "_drop10";
                if (dealer is not null)
                {
                    var (wall, cpu) = DealerServerRound(p, dealer, drop);
                    f.Add(($"secagg_server_ms_n500{key}", wall));
                    f.Add(($"secagg_server_cpu_ms_n500{key}", cpu));
                    if (drop == 0)
                    {
                        var (clientWall, clientCpu) = SampledClientMs(p, dealer, samples: 3);
                        f.Add(("secagg_client_ms_n500", clientWall));
                        f.Add(("secagg_client_cpu_ms_n500", clientCpu));
                    }
                }
                else
                {
                    var (server, client) = RealRound(500, drop, plus: false, length);
                    f.Add(($"secagg_server_ms_n500{key}", server));
                    if (drop == 0) f.Add(("secagg_client_ms_n500", client));
                }
            }
        }

        // --- SecAgg+, n = 1000, 10 % dropouts.
        {
            var p = Parameters(1000, plus: true, length);
            Console.WriteLine($"SecAgg+ n=1000: degree {p.NeighbourDegree}, threshold {p.Threshold}");
            if (quick)
            {
                var dealer = new Dealer(p);
                var (wall, cpu) = DealerServerRound(p, dealer, 0.1);
                f.Add(("secaggplus_server_ms_n1000_drop10", wall));
                f.Add(("secaggplus_server_cpu_ms_n1000_drop10", cpu));
                f.Add(("secaggplus_client_ms_n1000", SampledClientMs(p, dealer, samples: 5).WallMs));
            }
            else
            {
                var (server, client) = RealRound(1000, 0.1, plus: true, length);
                f.Add(("secaggplus_server_ms_n1000_drop10", server));
                f.Add(("secaggplus_client_ms_n1000", client));
            }
        }

        // --- Bytes per client per round for the 100,000-entry update.
        {
            var rng = new Random(1);
            var update = Enumerable.Range(0, VectorLength).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.01f).ToArray();
            var plain = UpdateFrame.EncodeDense(update).Length;
            var q8 = UpdateFrame.EncodeQuantized(StochasticQuantizer.Quantize(update, 8, 256, rng)).Length;
            var topk = UpdateFrame.EncodeSparse(new TopKSparsifier(VectorLength, 0.1).Compress(update)).Length;
            var ring16 = RingCodec.PackedLength(VectorLength, 16);
            f.Add(("bytes_plain", 4 * VectorLength));
            f.Add(("bytes_plain_framed", plain));
            f.Add(("bytes_sent", q8));
            f.Add(("bytes_saving_pct", 100.0 * (1 - q8 / (4.0 * VectorLength))));
            f.Add(("bytes_topk10", topk));
            f.Add(("bytes_secagg_k16_masked", ring16));
            Console.WriteLine($"bytes per client per round, 100k entries: float32 {4 * VectorLength}, framed {plain}, 8-bit quantized {q8}, top-10% {topk}, secagg ring k=16 masked input {ring16} (+ keys and shares, see below)");

            // With secure aggregation as the product runs it (issue 14): 8-bit stochastic quantization in a ring of
            // 8 + ceil(log2 4) = 10 bits, masks expanded from seeds; everything client 1 posts in a 4-client round
            // (keys, share bundles, masked vector, revealed shares) as the JSON bodies of the HTTP protocol.
            var secure = new FederationSecureAggregation();
            var ring = RoundCoordinator.TrainingRingBits(secure, 4);
            var encoding = new UpdateRingEncoding(ring, 1.01f * 0.5f, 4, VectorLength);
            int[] ids = [1, 2, 3, 4];
            // The same round twice: the honest-but-curious protocol, and the malicious-server variant the product now runs
            // (issue 20: signed advertisements, the consistency check's signature POST, peers' signatures verified before
            // unmasking). Bytes are client 1's JSON bodies; time is the whole in-process protocol (4 clients + server), median of 3.
            (long Sent, double Ms, double Error) Run(bool malicious)
            {
                var times = new List<double>();
                long sent = 0;
                double error = 0;
                for (var rep = 0; rep < 3; rep++)
                {
                    var signers = ids.ToDictionary(i => i, _ => ECDsa.Create(ECCurve.NamedCurves.nistP256));
                    var pki = ids.ToDictionary(i => i, i => signers[i].ExportSubjectPublicKeyInfo());
                    var context = SecAggSigningContext.Of("bench", 1, RoundStages.Training);
                    var parameters = new SecAggRoundParameters(RandomNumberGenerator.GetBytes(32), ids, 3, VectorLength + 1, ring, 0, [], malicious);
                    var inputs = ids.ToDictionary(i => i, _ => UpdateEncoding.Encode(update, 1.0, encoding, rng));
                    var started = Stopwatch.GetTimestamp();
                    var clients = ids.ToDictionary(i => i, i => malicious ? new SecAggClient(parameters, i, signers[i], pki, context) : new SecAggClient(parameters, i));
                    var server = malicious ? new SecAggServer(parameters, pki, context) : new SecAggServer(parameters);
                    sent = 0;
                    long Body(object upload) => System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(upload, upload.GetType(), RoundJson.Options).Length;
                    foreach (var i in ids) { var m = clients[i].AdvertiseKeys(); server.ReceiveAdvertiseKeys(m); if (i == 1) sent += Body(new AdvertiseKeysUpload(m)); }
                    var keys = server.CloseAdvertiseKeys();
                    foreach (var i in ids) { var m = clients[i].ShareKeys(keys[i]); server.ReceiveShareKeys(m); if (i == 1) sent += Body(new ShareKeysUpload(m)); }
                    var forwarded = server.CloseShareKeys();
                    foreach (var i in ids)
                    {
                        var m = clients[i].MaskInput(forwarded[i], inputs[i]);
                        server.ReceiveMaskedInput(m);
                        if (i == 1) sent += Body(new MaskedInputUpload(m));
                    }
                    var request = server.CloseMaskedInput();
                    if (malicious)
                    {
                        foreach (var i in ids) { var m = clients[i].SignSurvivors(request); server.ReceiveConsistencySignature(m); if (i == 1) sent += Body(new ConsistencyUpload(m)); }
                        request = server.CloseConsistencyCheck();
                    }
                    foreach (var i in ids) { var m = clients[i].Unmask(request); server.ReceiveUnmaskResponse(m); if (i == 1) sent += Body(new UnmaskUpload(m)); }
                    var total = server.Finish();
                    times.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    var (mean, _) = UpdateEncoding.Decode(total.Sum, encoding);
                    error = mean.Zip(update).Max(x => Math.Abs(x.First - x.Second));
                    foreach (var c in clients.Values) c.Dispose();
                    foreach (var k in signers.Values) k.Dispose();
                }
                return (sent, Measure.Median(times.ToArray()), error);
            }
            var honest = Run(malicious: false);
            var active = Run(malicious: true);
            f.Add(("bytes_secagg_sent", honest.Sent));
            f.Add(("bytes_secagg_ratio", honest.Sent / (4.0 * VectorLength)));
            f.Add(("bytes_secagg_sent_malicious", active.Sent));
            f.Add(("bytes_secagg_malicious_extra", active.Sent - honest.Sent));
            f.Add(("secagg_round_ms_n4", honest.Ms));
            f.Add(("secagg_round_ms_n4_malicious", active.Ms));
            Console.WriteLine($"secure aggregation, 100k entries, 4 clients: ring {ring} bits (8-bit quantization + 2 bits headroom), {honest.Sent} B of JSON per client per round = {100.0 * honest.Sent / (4.0 * VectorLength):F1} % of float32; max decode error of the mean {honest.Error:G3}");
            Console.WriteLine($"malicious-server variant, same round: {active.Sent} B per client (+{active.Sent - honest.Sent} B: two signatures and the consistency POST), protocol {active.Ms:F1} ms vs {honest.Ms:F1} ms in process (4 clients + server); max decode error {active.Error:G3}");
        }

        // --- Simulated CNN-LSTM rounds: overhead of secure aggregation, federated vs central AUROC, DP cost.
        var fed = new HospitalFederation(new HospitalFederationOptions { Hospitals = 4, PatientsPerHospital = 1000, Width = 8 });
        Console.WriteLine($"CNN-LSTM: {fed.ParameterCount} parameters, 4 hospitals, {fed.Data.PooledTrain().Count} training sequences");
        {
            var rounds = quick ? 5 : 10;
            var plainRun = new FederatedSimulator(new FedAvg(new FedAvgOptions { FractionEvaluate = 0 }), fed.Clients(), new SimulationOptions { Rounds = rounds, ParallelClients = false }).Run(fed.InitialParameters());
            var secureRun = new FederatedSimulator(new FedAvg(new FedAvgOptions { FractionEvaluate = 0 }), fed.Clients(), new SimulationOptions { Rounds = rounds, ParallelClients = false, SecureAggregation = new SecureAggregationOptions { ClipRange = 4 } }).Run(fed.InitialParameters());
            // Clients train in parallel on their own machines: a round lasts as long as the slowest client, then the server.
            // Local training is the same with or without secure aggregation, so the overhead is the protocol's client and
            // server time over the plain server's aggregation, relative to the plain round (median over rounds after the first).
            var plainRounds = plainRun.Rounds.Skip(1).ToArray();
            var secureRounds = secureRun.Rounds.Skip(1).ToArray();
            var trainMs = Measure.Median(plainRounds.Concat(secureRounds).Select(r => r.MaxClientTrainingTime.TotalMilliseconds).ToArray());
            var plainServerMs = Measure.Median(plainRounds.Select(r => r.ServerTime.TotalMilliseconds).ToArray());
            var secureExtraMs = Measure.Median(secureRounds.Select(r => (r.MaxClientProtocolTime + r.ServerTime).TotalMilliseconds).ToArray());
            var plainMs = trainMs + plainServerMs;
            var secureMs = trainMs + secureExtraMs;
            f.Add(("round_ms_plain", plainMs));
            f.Add(("round_ms_secagg", secureMs));
            f.Add(("secagg_overhead_ratio", secureMs / plainMs));
            Console.WriteLine($"round: local training {trainMs:F1} ms (slowest client), plain aggregation {plainServerMs:F2} ms, secure aggregation client+server {secureExtraMs:F2} ms -> ratio {secureMs / plainMs:F3}");
            f.Add(("bytes_cnnlstm_plain", 4 * fed.ParameterCount));
            f.Add(("bytes_cnnlstm_secagg_sent", secureRun.Rounds[^1].BytesSentPerClient));
            var q8 = new FederatedSimulator(new FedAvg(new FedAvgOptions { FractionEvaluate = 0 }), fed.Clients(), new SimulationOptions { Rounds = 1, Compression = new CompressionOptions(8) }).Run(fed.InitialParameters());
            f.Add(("bytes_cnnlstm_q8_sent", q8.Rounds[0].BytesSentPerClient));
        }
        {
            var sw = Stopwatch.StartNew();
            var central = fed.PooledAuroc(fed.TrainCentral(maxEpochs: 40, learningRate: 0.01));
            var run = new FederatedSimulator(FedAvg.FedProx(0.01, new FedAvgOptions { LocalEpochs = 2, LearningRate = 0.01 }), fed.Clients(), new SimulationOptions { Rounds = 40 }).Run(fed.InitialParameters());
            var federated = fed.PooledAuroc(run.BestParameters);
            f.Add(("auroc_federated", federated));
            if (!quick)
            {
                var secure = new FederatedSimulator(FedAvg.FedProx(0.01, new FedAvgOptions { LocalEpochs = 2, LearningRate = 0.01 }), fed.Clients(),
                    new SimulationOptions { Rounds = 40, SecureAggregation = new SecureAggregationOptions { ClipRange = 4 } }).Run(fed.InitialParameters());
                f.Add(("auroc_federated_secagg", fed.PooledAuroc(secure.BestParameters)));
            }
            f.Add(("auroc_central", central));
            Console.WriteLine($"AUROC: central {central:F4} (early stopping on pooled validation), FedProx mu=0.01 40 rounds x 2 local epochs {federated:F4} (best validation round {run.BestRound}); {sw.ElapsedMilliseconds} ms");
            foreach (var eps in new[] { 1.0, 3.0, 8.0 })
            {
                var dpRounds = quick ? 5 : 20;
                var z = DifferentialPrivacyStrategy.CalibrateNoise(eps, 1e-5, 1.0, dpRounds);
                var dp = new DifferentialPrivacyStrategy(FedAvg.FedProx(0.01, new FedAvgOptions { LocalEpochs = 2, LearningRate = 0.01 }),
                    new DpOptions(ClipNorm: 0.5, NoiseMultiplier: z, NoisePlacement.Distributed, MinSurvivors: 4, Delta: 1e-5, EpsilonMax: eps + 1e-9), population: 4, new Random(7));
                var r = new FederatedSimulator(dp, fed.Clients(), new SimulationOptions { Rounds = dpRounds, SecureAggregation = new SecureAggregationOptions() }).Run(fed.InitialParameters());
                var auroc = fed.PooledAuroc(r.BestParameters);
                f.Add(($"auroc_dp_eps{eps:F0}", auroc));
                Console.WriteLine($"DP eps={eps} delta=1e-5 over {dpRounds} rounds, client-level, q=1: z={z:F3}, S=0.5, AUROC {auroc:F4} (spent {r.Rounds[^1].Epsilon:F3})");
            }
        }

        // --- End to end (issue 8): the function host and N hospital agents over HTTPS on 127.0.0.1, through
        // 'serverless-client simulate --timing-only': round wall time from POST .../rounds to Completed, for a
        // federation with secure aggregation and one without (clean rounds, DP off, the 921-parameter CNN-LSTM,
        // 75 training patients per agent). Round 1 also gathers the standardization statistics, so the figure is
        // the median of the rounds after it. 4 agents run as processes; 16 and 64 as tasks in one process.
        foreach (var n in quick ? new[] { 4 } : new[] { 4, 16, 64 })
        {
            var (secure, plain) = EndToEndRound(n, rounds: quick ? 2 : 3);
            f.Add(($"e2e_round_s_{n}", secure));
            f.Add(($"e2e_round_s_{n}_nosecagg", plain));
            Console.WriteLine($"end to end, {n} agents ({(n <= 4 ? "processes" : "in-process tasks")}): round {secure:F2} s with secure aggregation, {plain:F2} s without (ratio {secure / plain:F2})");
        }

        Console.WriteLine(Measure.Result(Name, f));
        return Task.FromResult(0);
    }

    /// <summary>Runs <c>serverless-client simulate --timing-only</c> and reads its SIMULATION line.</summary>
    private static (double SecureSeconds, double PlainSeconds) EndToEndRound(int agents, int rounds)
    {
        var client = ClientDll();
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { client, "simulate", "--timing-only", "--clients", agents.ToString(CultureInfo.InvariantCulture), "--rounds", rounds.ToString(CultureInfo.InvariantCulture),
                     "--dp", "off", "--dropout", "0", "--attackers", "0", "--records", "100", "--seed", "1", "--agents", agents <= 4 ? "process" : "in-process" })
            start.ArgumentList.Add(a);
        // A host built beside this benchmark (same artifacts layout) is used as is; otherwise simulate finds or builds it.
        var siblingHost = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "Serverless.Functions", "release", "Serverless.Functions.dll"));
        if (Environment.GetEnvironmentVariable("SERVERLESS_FUNCTIONS_DLL") is null && File.Exists(siblingHost)) start.Environment["SERVERLESS_FUNCTIONS_DLL"] = siblingHost;
        start.Environment["NO_COLOR"] = "1";
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start serverless-client simulate");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(15))) { process.Kill(); throw new TimeoutException("simulate did not finish in 15 minutes"); }
        var line = stdout.Split('\n').LastOrDefault(l => l.StartsWith("SIMULATION ", StringComparison.Ordinal));
        if (process.ExitCode != 0 || line is null) throw new InvalidOperationException($"simulate failed ({process.ExitCode}): {stderr.Result.Trim()} {stdout[Math.Max(0, stdout.Length - 600)..]}");
        var values = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]);
        double Read(string key) => double.TryParse(values[key], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new InvalidDataException($"simulate reported no {key}: {line}");
        return (Read("round_s_secagg"), Read("round_s_plain"));
    }

    /// <summary>SERVERLESS_CLIENT_DLL, the client built beside this benchmark (artifacts layout), or the repository's Release build (built if missing).</summary>
    private static string ClientDll()
    {
        if (Environment.GetEnvironmentVariable("SERVERLESS_CLIENT_DLL") is { Length: > 0 } fromEnv) return fromEnv;
        var sibling = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "Serverless.Client", "release", "serverless-client.dll"));
        if (File.Exists(sibling)) return sibling;
        var root = RepoRoot.Find() ?? throw new InvalidOperationException("cannot find the repository (Serverless.sln) to build serverless-client");
        var dll = Path.Combine(root, "client", "Serverless.Client", "bin", "Release", "net10.0", "serverless-client.dll");
        if (!File.Exists(dll))
        {
            Console.WriteLine("building serverless-client (Release) for the end-to-end figures ...");
            using var build = Process.Start(new ProcessStartInfo("dotnet", ["build", Path.Combine(root, "client", "Serverless.Client"), "-c", "Release", "--nologo", "-v", "q"]))!;
            build.WaitForExit();
            if (build.ExitCode != 0 || !File.Exists(dll)) throw new InvalidOperationException("building serverless-client failed");
        }
        return dll;
    }

    private static SecAggRoundParameters Parameters(int n, bool plus, int length) =>
        new SecureAggregationOptions { SecAggPlus = plus }.RoundParameters(Enumerable.Range(1, n).ToArray(), length);

    private static Dictionary<int, SecAggPhase> Dropouts(SecAggRoundParameters p, double rate)
    {
        // Bonawitz et al.'s costly case: clients that shared keys but never sent their masked input.
        var count = (int)Math.Round(rate * p.ClientIds.Length);
        return p.ClientIds.Where((_, i) => i % Math.Max(1, p.ClientIds.Length / Math.Max(1, count)) == 0).Take(count)
            .ToDictionary(id => id, _ => SecAggPhase.MaskedInputCollection);
    }

    /// <summary>A full round with real clients; checks the exact sum; returns server ms and the median client ms.</summary>
    private static (double ServerMs, double ClientMs) RealRound(int n, double drop, bool plus, int length)
    {
        var p = Parameters(n, plus, length);
        var rng = new Random(n);
        var inputs = p.ClientIds.ToDictionary(id => id, _ => Enumerable.Range(0, length).Select(_ => (uint)rng.Next()).ToArray());
        var drops = Dropouts(p, drop);
        var (result, stats) = SecureAggregationRunner.Run(p, inputs, drops);
        var expected = new uint[length];
        foreach (var id in result.Included) for (var i = 0; i < length; i++) expected[i] += inputs[id][i];
        if (!expected.AsSpan().SequenceEqual(result.Sum)) throw new InvalidOperationException("secure sum differs from the plain sum");
        var clientMs = Measure.Median(stats.ClientTimes.Where(kv => !drops.ContainsKey(kv.Key)).Select(kv => kv.Value.TotalMilliseconds).ToArray());
        Console.WriteLine($"{(plus ? "SecAgg+" : "SecAgg")} n={n} drop={drop:P0} real clients: server {stats.ServerTime.TotalMilliseconds:F0} ms, client median {clientMs:F0} ms, sum exact; upload/client {stats.BytesUploaded.Values.Max()} B");
        return (stats.ServerTime.TotalMilliseconds, clientMs);
    }

    /// <summary>The server's full work for one round against dealer-made messages; returns its wall time in ms.</summary>
    private static (double WallMs, double CpuMs) DealerServerRound(SecAggRoundParameters p, Dealer dealer, double drop)
    {
        var drops = Dropouts(p, drop);
        var server = new SecAggServer(p);
        var elapsed = TimeSpan.Zero;
        var cpu = TimeSpan.Zero;
        var process = Process.GetCurrentProcess();
        void Time(Action a)
        {
            process.Refresh();
            var c0 = process.TotalProcessorTime;
            var s = Stopwatch.GetTimestamp();
            a();
            elapsed += Stopwatch.GetElapsedTime(s);
            process.Refresh();
            cpu += process.TotalProcessorTime - c0;
        }
        var adverts = p.ClientIds.Select(dealer.Advertise).ToArray();
        Time(() => { foreach (var m in adverts) server.ReceiveAdvertiseKeys(m); server.CloseAdvertiseKeys(); });
        var shares = p.ClientIds.Select(dealer.Share).ToArray();
        Time(() => { foreach (var m in shares) server.ReceiveShareKeys(m); server.CloseShareKeys(); });
        var masked = p.ClientIds.Where(id => !drops.ContainsKey(id)).Select(dealer.Masked).ToArray();
        UnmaskRequest request = null!;
        Time(() => { foreach (var m in masked) server.ReceiveMaskedInput(m); request = server.CloseMaskedInput(); });
        var responses = request.Survivors.Select(v => dealer.Unmask(v, request)).ToArray();
        SecAggResult result = null!;
        Time(() => { foreach (var m in responses) server.ReceiveUnmaskResponse(m); result = server.Finish(); });
        if (result.Included.Length != p.ClientIds.Length - drops.Count) throw new InvalidOperationException("unexpected survivor set");
        Console.WriteLine($"{(p.NeighbourDegree > 0 ? "SecAgg+" : "SecAgg")} n={p.ClientIds.Length} drop={drop:P0} (dealer clients): server {elapsed.TotalMilliseconds:F0} ms wall, {cpu.TotalMilliseconds:F0} ms CPU (all threads); {drops.Count} masking keys and {result.Included.Length} self-mask seeds reconstructed");
        return (elapsed.TotalMilliseconds, cpu.TotalMilliseconds);
    }

    /// <summary>Times real clients against the dealer's peers (the client's cost does not depend on whether peers are real).</summary>
    private static (double WallMs, double CpuMs) SampledClientMs(SecAggRoundParameters p, Dealer dealer, int samples)
    {
        var times = new List<double>();
        var cpuTimes = new List<double>();
        var process = Process.GetCurrentProcess();
        var input = new uint[p.VectorLength];
        foreach (var id in p.ClientIds.Take(samples))
        {
            // A client is single-threaded and nothing else runs meanwhile, so the process's CPU time is the client's.
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            using var client = new SecAggClient(p, id);
            client.AdvertiseKeys();
            var neighbours = dealer.Graph.NeighboursOf(id);
            client.ShareKeys(new KeysBroadcast(neighbours.Select(dealer.Advertise).ToArray()));
            // The dealer's bundles do not decrypt under this client's fresh key; the work (ECDH, HKDF, AES-GCM) is the same.
            var forwarded = new ForwardedShares(neighbours.Select(u => new EncryptedShare(u, id, RandomNumberGenerator.GetBytes(SecAggCrypto.BundleCipherLength))).ToArray());
            client.MaskInput(forwarded, input);
            client.Unmask(new UnmaskRequest(p.ClientIds, []));
            times.Add(sw.Elapsed.TotalMilliseconds);
            process.Refresh();
            cpuTimes.Add((process.TotalProcessorTime - cpu0).TotalMilliseconds);
        }
        var median = Measure.Median(times.ToArray());
        var cpuMedian = Measure.Median(cpuTimes.ToArray());
        Console.WriteLine($"client n={p.ClientIds.Length} degree {dealer.Graph.Degree}: median {median:F0} ms wall, {cpuMedian:F0} ms CPU over {samples} real clients");
        return (median, cpuMedian);
    }

    /// <summary>Plays the clients that are not being timed: real P-256 keys, real Shamir shares and self-mask commitments, random ciphertexts and masked inputs.</summary>
    private sealed class Dealer
    {
        private readonly SecAggRoundParameters _p;
        private readonly Dictionary<int, AdvertiseKeysMessage> _adverts = [];
        private readonly Dictionary<int, byte[]> _commitments = [];
        private readonly Dictionary<int, Dictionary<int, (byte[] S, byte[] B)>> _shares = [];

        public NeighbourGraph Graph { get; }

        public Dealer(SecAggRoundParameters p)
        {
            _p = p;
            Graph = p.BuildGraph();
            var sw = Stopwatch.StartNew();
            var results = new (AdvertiseKeysMessage, byte[], Dictionary<int, (byte[], byte[])>)[p.ClientIds.Length];
            Parallel.For(0, p.ClientIds.Length, i =>
            {
                var id = p.ClientIds[i];
                using var c = SecAggCrypto.NewKeyPair();
                using var s = SecAggCrypto.NewKeyPair();
                var seed = RandomNumberGenerator.GetBytes(32);
                var xs = Graph.NeighboursOf(id).ToArray();
                var sShares = ShamirSecretSharing.Split(SecAggCrypto.ExportPrivateScalar(s), p.Threshold, xs);
                var bShares = ShamirSecretSharing.Split(seed, p.Threshold, xs);
                var held = new Dictionary<int, (byte[], byte[])>();
                for (var k = 0; k < xs.Length; k++) held[xs[k]] = (sShares[k], bShares[k]);
                results[i] = (new AdvertiseKeysMessage(id, SecAggCrypto.ExportPublic(c), SecAggCrypto.ExportPublic(s), []), SecAggCrypto.Commit(p.RoundId, id, seed), held);
            });
            for (var i = 0; i < results.Length; i++)
            {
                var id = p.ClientIds[i];
                (_adverts[id], _commitments[id], var held) = results[i];
                _shares[id] = held.ToDictionary(kv => kv.Key, kv => kv.Value);
            }
            Console.WriteLine($"dealer: {p.ClientIds.Length} clients' keys and shares in {sw.ElapsedMilliseconds} ms (not timed)");
        }

        public AdvertiseKeysMessage Advertise(int id) => _adverts[id];

        public ShareKeysMessage Share(int id) => new(id,
            Graph.NeighboursOf(id).Select(v => new EncryptedShare(id, v, RandomNumberGenerator.GetBytes(SecAggCrypto.BundleCipherLength))).ToArray(), _commitments[id]);

        public MaskedInputMessage Masked(int id) => new(id, RandomNumberGenerator.GetBytes(RingCodec.PackedLength(_p.VectorLength, _p.RingBits)), []);

        public UnmaskResponse Unmask(int v, UnmaskRequest request)
        {
            var list = new List<RevealedShare>();
            foreach (var u in request.Survivors)
                if (Graph.AreNeighbours(u, v)) list.Add(new RevealedShare(u, SharedSecretKind.SelfMaskSeed, _shares[u][v].B));
            foreach (var u in request.Dropped)
                if (Graph.AreNeighbours(u, v)) list.Add(new RevealedShare(u, SharedSecretKind.MaskingKey, _shares[u][v].S));
            return new UnmaskResponse(v, list.ToArray());
        }
    }
}
