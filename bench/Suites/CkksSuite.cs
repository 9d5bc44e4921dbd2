using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Serverless.Privacy.Ckks;

namespace Serverless.Bench.Suites;

/// <summary>
/// CKKS per-operation medians at N=8192 (Q=[60,40,40], P=60) and N=16384 (Q=[60,40×6], P=60),
/// the chains SEAL's CoeffModulus examples use, Δ=2^40; plus encryption throughput in plaintext
/// MB/s (N/2 doubles per ciphertext, encode + encrypt). The full run also measures the same
/// operations with node-seal (SEAL 4.1 in WebAssembly) in the same run and prints our/peer ratios.
/// </summary>
internal sealed class CkksSuite : IBenchSuite
{
    public string Name => "ckks";

    private static readonly (int N, int[] Q, int P)[] s_sets =
    [
        (8192, [60, 40, 40], 60),
        (16384, [60, 40, 40, 40, 40, 40, 40], 60),
    ];

    public Task<int> RunAsync(BenchOptions options)
    {
        var figures = new List<(string Key, object Value)>();
        var ours = new Dictionary<string, double>();
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        double mbPerSecond = 0;
        foreach (var (n, q, p) in s_sets)
        {
            var iterations = options.Quick ? (n == 8192 ? 7 : 3) : (n == 8192 ? 60 : 25);
            var r = MeasureOurs(n, q, p, iterations, cpuTimes: !options.Quick);
            foreach (var (op, us) in r) ours[$"n{n}_{op}"] = us;
            if (n == 8192)
            {
                // Plaintext bytes per ciphertext: N/2 doubles.
                var bytes = n / 2 * 8.0;
                mbPerSecond = bytes / (r["encode_us"] + r["encrypt_us"]);
            }
            Console.WriteLine($"N={n} Q=[{string.Join(",", q)}] P={p}: " + string.Join(" ", r.Select(kv => $"{kv.Key}={kv.Value:F0}")));
        }
        foreach (var key in new[] { "encode", "encrypt", "add", "mul", "relin", "rescale", "rotate", "decrypt" })
        {
            figures.Add(($"n8192_{key}_us", ours[$"n8192_{key}_us"]));
        }
        foreach (var key in new[] { "encode", "encrypt", "add", "mul", "relin", "rescale", "rotate", "decrypt" })
        {
            figures.Add(($"n16384_{key}_us", ours[$"n16384_{key}_us"]));
        }
        figures.Add(("encrypt_mb_per_s", mbPerSecond));
        // The seed paper: 100 KB encrypted in about 0.5 s.
        figures.Add(("encrypt_100kb_ms", 100_000 / mbPerSecond / 1000));

        if (!options.Quick)
        {
            var peer = RunPeer(options.Quick);
            if (peer is not null)
            {
                Console.WriteLine($"node-seal {peer.Value.Version}: " + string.Join(" ", peer.Value.Medians.Select(kv => $"{kv.Key}={kv.Value:F0}")));
                foreach (var (key, value) in peer.Value.Medians)
                {
                    figures.Add(($"seal_{key}", value));
                    if (ours.TryGetValue(key, out var mine) && value > 0)
                        figures.Add(($"ratio_{key.Replace("_us", "", StringComparison.Ordinal)}", mine / value));
                }
            }
            else Console.WriteLine("node-seal peer unavailable (run `npm ci --ignore-scripts` in tools/); ratios omitted");
        }
        Console.WriteLine(Measure.Result(Name, figures));
        return Task.FromResult(0);
    }

    private static Dictionary<string, double> MeasureOurs(int n, int[] q, int p, int iterations, bool cpuTimes)
    {
        var parameters = CkksParameters.Create(n, q, p, Math.Pow(2, 40));
        // Single-threaded, like the node-seal peer and the published SEAL figures.
        var context = new CkksContext(parameters, parallelLimbs: false);
        var keygen = new KeyGenerator(context);
        var pk = keygen.CreatePublicKey();
        var relin = keygen.CreateRelinearizationKey();
        var galois = keygen.CreateGaloisKeys([1]);
        var encoder = new Encoder(context);
        var encryptor = new Encryptor(context, pk);
        var decryptor = new Decryptor(context, keygen.SecretKey);
        var evaluator = new Evaluator(context, relin, galois);
        var values = new double[context.Slots];
        for (var i = 0; i < values.Length; i++) values[i] = Math.Sin(i);
        var pt = new Plaintext(context);
        encoder.Encode(values, parameters.Scale, context.MaxLevel, pt);
        var a = encryptor.Encrypt(pt);
        var b = encryptor.Encrypt(pt);
        var dst = new Ciphertext(context);
        var product = new Ciphertext(context);
        evaluator.Multiply(a, b, product);
        var relined = new Ciphertext(context);
        evaluator.Relinearize(product, relined);
        var outPt = new Plaintext(context);
        var r = new Dictionary<string, double>
        {
            ["encode_us"] = Measure.MedianMicroseconds(() => encoder.Encode(values, parameters.Scale, context.MaxLevel, pt), iterations),
            ["encrypt_us"] = Measure.MedianMicroseconds(() => encryptor.Encrypt(pt, dst), iterations),
            ["add_us"] = Measure.MedianMicroseconds(() => evaluator.Add(a, b, dst), iterations),
            ["mul_us"] = Measure.MedianMicroseconds(() => evaluator.Multiply(a, b, dst), iterations),
            ["relin_us"] = Measure.MedianMicroseconds(() => evaluator.Relinearize(product, dst), iterations),
            ["rescale_us"] = Measure.MedianMicroseconds(() => evaluator.Rescale(relined, dst), iterations),
            ["rotate_us"] = Measure.MedianMicroseconds(() => evaluator.Rotate(a, 1, dst), iterations),
            ["decrypt_us"] = Measure.MedianMicroseconds(() => decryptor.Decrypt(a, outPt), iterations),
        };
        // Thread CPU time of the same operations (full run only): on a shared, loaded machine the
        // wall-clock medians include time spent preempted; CPU time shows the work itself.
        var cpu = !cpuTimes ? [] : new Dictionary<string, double>
        {
            ["encode"] = Measure.MedianThreadCpuMicroseconds(() => encoder.Encode(values, parameters.Scale, context.MaxLevel, pt), iterations),
            ["encrypt"] = Measure.MedianThreadCpuMicroseconds(() => encryptor.Encrypt(pt, dst), iterations),
            ["add"] = Measure.MedianThreadCpuMicroseconds(() => evaluator.Add(a, b, dst), iterations),
            ["mul"] = Measure.MedianThreadCpuMicroseconds(() => evaluator.Multiply(a, b, dst), iterations),
            ["relin"] = Measure.MedianThreadCpuMicroseconds(() => evaluator.Relinearize(product, dst), iterations),
            ["rescale"] = Measure.MedianThreadCpuMicroseconds(() => evaluator.Rescale(relined, dst), iterations),
            ["rotate"] = Measure.MedianThreadCpuMicroseconds(() => evaluator.Rotate(a, 1, dst), iterations),
            ["decrypt"] = Measure.MedianThreadCpuMicroseconds(() => decryptor.Decrypt(a, outPt), iterations),
        };
        if (cpuTimes) Console.WriteLine($"N={n} thread-CPU medians (µs): " + string.Join(" ", cpu.Select(kv => $"{kv.Key}={kv.Value:F0}")));
        // Sanity: the measured pipeline still decrypts correctly.
        evaluator.Rotate(a, 1, dst);
        var check = encoder.DecodeReal(decryptor.Decrypt(dst));
        if (Math.Abs(check[0] - values[1]) > 1e-4) throw new InvalidOperationException($"CKKS self-check failed: {check[0]} vs {values[1]}");
        return r;
    }

    private static (string Version, Dictionary<string, double> Medians)? RunPeer(bool quick)
    {
        var root = RepoRoot.Find();
        if (root is null) return null;
        var script = Path.Combine(root, "bench", "peers", "seal-ckks.mjs");
        // The pinned npm tools (tools/package.json): scripts/test.sh installs them, or `cd tools && npm ci --ignore-scripts`.
        var candidates = new[] { Path.Combine(root, "tools", "node_modules", "node-seal") };
        foreach (var dir in candidates.Where(Directory.Exists))
        {
            var psi = new ProcessStartInfo("node")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[] { script, dir, quick ? "5" : "20", "8192:60,40,40,60", "16384:60,40,40,40,40,40,40,60" })
                psi.ArgumentList.Add(arg);
            try
            {
                using var process = Process.Start(psi)!;
                var stdout = process.StandardOutput.ReadToEnd();
                var stderr = process.StandardError.ReadToEnd();
                process.WaitForExit();
                if (process.ExitCode != 0)
                {
                    Console.WriteLine($"node-seal at {dir} failed: {stderr.Split('\n').FirstOrDefault(l => l.Contains("Error", StringComparison.Ordinal))}");
                    continue;
                }
                using var doc = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
                var medians = new Dictionary<string, double>();
                string version = "?";
                foreach (var set in doc.RootElement.EnumerateObject())
                {
                    if (set.Name == "version") { version = set.Value.GetString() ?? "?"; continue; }
                    foreach (var op in set.Value.EnumerateObject()) medians[$"{set.Name}_{op.Name}"] = op.Value.GetDouble();
                }
                return (version, medians);
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or JsonException or InvalidOperationException)
            {
                Console.WriteLine($"node-seal at {dir} failed: {ex.Message}");
            }
        }
        return null;
    }
}
