using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Xunit.Abstractions;

namespace Serverless.Testing;

/// <summary>How one loader's input is judged: which exceptions it documents and how much it may allocate.</summary>
/// <param name="Name">Loader name, printed with the counts and in every failure.</param>
/// <param name="Documented">Exception types the loader's XML docs promise (subclasses included).</param>
/// <param name="BytesPerInputByte">Allocation slope: bytes the loader may allocate per input byte.</param>
/// <param name="FixedBytes">Allocation intercept: tables and buffers that do not depend on the input (justified per loader).</param>
/// <param name="MeasureAllThreads">Async loaders whose continuations hop threads: measure process-wide.</param>
/// <param name="CheckAllocation">False only where a known, separately tracked bug makes the bound fail.</param>
internal sealed record LoaderSpec(
    string Name,
    Type[] Documented,
    long BytesPerInputByte,
    long FixedBytes,
    bool MeasureAllThreads = false,
    bool CheckAllocation = true)
{
    public long Bound(int inputLength) => BytesPerInputByte * inputLength + FixedBytes;
}

/// <summary>
/// A seeded mutation fuzzer. From valid samples it derives random, truncated, bit-flipped,
/// length-field-mutated, spliced and extended inputs (deterministic for a seed), runs the loader on
/// each with a time box, and fails naming the seed and the iteration when an input ends in an
/// undocumented exception, hangs, or allocates more than the loader's stated bound.
/// </summary>
internal static class Fuzzer
{
    /// <summary>Inputs per loader unless SERVERLESS_FUZZ_ITERATIONS says more (CI runs the default).</summary>
    public const int DefaultIterations = 10_000;

    /// <summary>Seed of the run unless SERVERLESS_FUZZ_SEED says another (a failure prints the one to replay).</summary>
    public const int DefaultSeed = 19;

    /// <summary>Generous for a loaded 2-core machine: a hang is forever, a slow input is a few ms.</summary>
    public static readonly TimeSpan TimeBox = TimeSpan.FromSeconds(20);

    public static int Iterations =>
        int.TryParse(Environment.GetEnvironmentVariable("SERVERLESS_FUZZ_ITERATIONS"), out var n) && n > 0 ? n : DefaultIterations;

    public static int Seed =>
        int.TryParse(Environment.GetEnvironmentVariable("SERVERLESS_FUZZ_SEED"), out var s) ? s : DefaultSeed;

    private static readonly int[] InterestingInt32 =
        [0, 1, -1, 2, 7, 8, 16, 32, 64, 127, 128, 255, 256, 4095, 4096, 65535, 65536, 1 << 20, 1 << 24, 1 << 28, 1 << 30,
         int.MaxValue, int.MaxValue - 64, int.MinValue, -2];

    private static readonly string[] InterestingTokens =
        ["", "0", "-1", "1e309", "-1e309", "NaN", "99999999999999999999", "\"", ",", "\n", "\r\n", "{", "}", "[", "]", ":", "null", "true",
         "\"\"", "\\u0000", "\\ud800", "2024-02-30", "9999-12-31", "-0", "1.5", "00:00:00", "99:99:99", "é", "\uFEFF", ",,,,", "\"a\"\"b\""];

    /// <summary>
    /// Runs <see cref="Iterations"/> inputs (plus the samples and <paramref name="regressions"/>) through
    /// <paramref name="load"/> and returns what was seen; throws on the first violation.
    /// </summary>
    public static FuzzReport Run(LoaderSpec spec, IReadOnlyList<byte[]> samples, Action<byte[]> load, ITestOutputHelper output,
        IReadOnlyList<byte[]>? regressions = null, bool text = false, Func<byte[], byte[]>? reseal = null)
    {
        var seed = Seed;
        var iterations = Iterations;
        var random = new Random(HashCode.Combine(seed, StableHash(spec.Name)));
        var report = new FuzzReport(spec.Name);
        var clock = Stopwatch.StartNew();
        foreach (var s in samples) Judge(spec, load, s, report, $"sample", mustSucceed: true);
        foreach (var (r, i) in (regressions ?? []).Select((r, i) => (r, i))) Judge(spec, load, r, report, $"regression {i}", mustSucceed: false);
        for (var i = 0; i < iterations; i++)
        {
            var input = Mutate(random, samples[random.Next(samples.Count)], text);
            if (reseal is not null && random.Next(2) == 0) input = reseal(input);
            Judge(spec, load, input, report, $"seed {seed} iteration {i}", mustSucceed: false);
        }
        clock.Stop();
        output.WriteLine($"{spec.Name}: {report.Inputs} inputs (seed {seed}, {iterations} mutated), {report.Parsed} parsed, {report.Rejected} rejected " +
            $"[{string.Join(", ", report.ByException.OrderByDescending(e => e.Value).Select(e => $"{e.Key} {e.Value}"))}], " +
            $"max allocation {report.MaxAllocation:N0} B (bound at that input {report.BoundAtMax:N0} B), {clock.Elapsed.TotalSeconds:0.0} s");
        return report;
    }

    private static void Judge(LoaderSpec spec, Action<byte[]> load, byte[] input, FuzzReport report, string where, bool mustSucceed)
    {
        long allocated = 0;
        Exception? thrown = null;
        var task = Task.Factory.StartNew(() =>
        {
            var before = spec.MeasureAllThreads ? GC.GetTotalAllocatedBytes(precise: true) : GC.GetAllocatedBytesForCurrentThread();
            try
            {
                load(input);
            }
            catch (Exception e)
            {
                thrown = e;
            }
            allocated = (spec.MeasureAllThreads ? GC.GetTotalAllocatedBytes(precise: true) : GC.GetAllocatedBytesForCurrentThread()) - before;
        }, CancellationToken.None, TaskCreationOptions.DenyChildAttach, TaskScheduler.Default);
        if (!task.Wait(TimeBox))
            throw new FuzzFailure($"{spec.Name}: {where}: no answer within {TimeBox.TotalSeconds} s (hang?) on input {Describe(input)}");
        report.Inputs++;
        if (thrown is null)
        {
            report.Parsed++;
        }
        else
        {
            if (mustSucceed) throw new FuzzFailure($"{spec.Name}: {where}: the valid sample was refused: {thrown.GetType().Name}: {thrown.Message}");
            // Async loaders surface their documented exception unchanged through GetAwaiter().GetResult().
            if (!spec.Documented.Any(t => t.IsInstanceOfType(thrown)))
                throw new FuzzFailure($"{spec.Name}: {where}: undocumented {thrown.GetType().FullName}: {thrown.Message} on input {Describe(input)}", thrown);
            report.Rejected++;
            var key = thrown.GetType().Name;
            report.ByException[key] = report.ByException.GetValueOrDefault(key) + 1;
        }
        if (allocated > report.MaxAllocation)
        {
            report.MaxAllocation = allocated;
            report.BoundAtMax = spec.Bound(input.Length);
        }
        if (spec.CheckAllocation && allocated > spec.Bound(input.Length))
            throw new FuzzFailure($"{spec.Name}: {where}: allocated {allocated:N0} B from a {input.Length}-byte input, over the bound {spec.Bound(input.Length):N0} B; input {Describe(input)}");
    }

    /// <summary>Short inputs in full (base64, to paste as a regression case), long ones by length and prefix.</summary>
    private static string Describe(byte[] input) =>
        input.Length <= 512 ? $"(base64) {Convert.ToBase64String(input)}" : $"of {input.Length} bytes starting (base64) {Convert.ToBase64String(input, 0, 96)}";

    /// <summary>One to three stacked mutations of <paramref name="sample"/> (or a fresh random input).</summary>
    public static byte[] Mutate(Random random, byte[] sample, bool text)
    {
        var data = sample;
        var rounds = 1 + (random.Next(4) == 0 ? random.Next(1, 3) : 0);
        for (var r = 0; r < rounds; r++) data = MutateOnce(random, data, text);
        return data;
    }

    private static byte[] MutateOnce(Random random, byte[] sample, bool text)
    {
        switch (random.Next(text ? 9 : 7))
        {
            case 0: // random bytes, sometimes behind a valid prefix (so the header checks pass and the body is random)
                {
                    var keep = random.Next(2) == 0 ? random.Next(Math.Min(sample.Length, 96) + 1) : 0;
                    var data = new byte[keep + random.Next(0, Math.Min(4096, sample.Length + 64))];
                    sample.AsSpan(0, keep).CopyTo(data);
                    random.NextBytes(data.AsSpan(keep));
                    return data;
                }
            case 1: // truncation, biased to the header
                return sample[..(random.Next(3) == 0 ? random.Next(Math.Min(sample.Length, 128) + 1) : random.Next(sample.Length + 1))];
            case 2: // bit flips, biased to the header
                {
                    var data = (byte[])sample.Clone();
                    if (data.Length == 0) return data;
                    var flips = 1 + random.Next(8);
                    for (var f = 0; f < flips; f++)
                    {
                        var at = HeaderBiasedOffset(random, data.Length);
                        data[at] ^= (byte)(1 << random.Next(8));
                    }
                    return data;
                }
            case 3: // length-field mutation: an interesting 8/16/32-bit value, either endianness, at a header-biased offset
                {
                    var data = (byte[])sample.Clone();
                    if (data.Length < 4) return data;
                    var at = Math.Min(HeaderBiasedOffset(random, data.Length), data.Length - 4);
                    var value = random.Next(4) == 0 ? random.Next(int.MinValue, int.MaxValue)
                        : random.Next(3) == 0 ? sample.Length + random.Next(-8, 9) : InterestingInt32[random.Next(InterestingInt32.Length)];
                    switch (random.Next(4))
                    {
                        case 0: BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(at), value); break;
                        case 1: BinaryPrimitives.WriteInt32BigEndian(data.AsSpan(at), value); break;
                        case 2: BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at), (ushort)value); break;
                        default: data[at] = (byte)value; break;
                    }
                    return data;
                }
            case 4: // splice: a chunk copied over another place (duplicated fields, shifted lengths)
                {
                    if (sample.Length < 2) return sample;
                    var from = random.Next(sample.Length);
                    var count = random.Next(1, Math.Min(256, sample.Length - from) + 1);
                    var to = random.Next(sample.Length);
                    var data = new List<byte>(sample.Length + count);
                    data.AddRange(sample.AsSpan(0, to).ToArray());
                    data.AddRange(sample.AsSpan(from, count).ToArray());
                    data.AddRange(sample.AsSpan(to).ToArray());
                    return [.. data];
                }
            case 5: // deletion of a chunk
                {
                    if (sample.Length < 2) return sample;
                    var at = random.Next(sample.Length);
                    var count = random.Next(1, Math.Min(64, sample.Length - at) + 1);
                    return [.. sample.AsSpan(0, at), .. sample.AsSpan(at + count)];
                }
            case 6: // trailing garbage
                {
                    var tail = new byte[random.Next(1, 64)];
                    random.NextBytes(tail);
                    return [.. sample, .. tail];
                }
            default: // text only: a token inserted or replacing a short run (numbers, quotes, separators, odd Unicode)
                {
                    var token = Encoding.UTF8.GetBytes(InterestingTokens[random.Next(InterestingTokens.Length)]);
                    var at = random.Next(sample.Length + 1);
                    var cut = Math.Min(sample.Length - at, random.Next(0, 12));
                    return [.. sample.AsSpan(0, at), .. token, .. sample.AsSpan(at + cut)];
                }
        }
    }

    private static int HeaderBiasedOffset(Random random, int length) =>
        random.Next(2) == 0 ? random.Next(Math.Min(length, 160)) : random.Next(length);

    private static int StableHash(string s)
    {
        var h = 17;
        foreach (var c in s) h = unchecked(h * 31 + c);
        return h;
    }
}

internal sealed class FuzzReport(string name)
{
    public string Name { get; } = name;
    public int Inputs { get; set; }
    public int Parsed { get; set; }
    public int Rejected { get; set; }
    public long MaxAllocation { get; set; }
    public long BoundAtMax { get; set; }
    public Dictionary<string, int> ByException { get; } = [];
}

internal sealed class FuzzFailure(string message, Exception? inner = null) : Exception(message, inner);
