using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Serverless.Bench;

/// <summary>Timing helpers shared by the suites: medians of repeated runs, and the RESULT line.</summary>
internal static class Measure
{
    /// <summary>Median wall time of <paramref name="action"/> in microseconds, after warm-up runs.</summary>
    public static double MedianMicroseconds(Action action, int iterations, int warmup = 2) =>
        MedianOf(action, iterations, warmup, static () => Stopwatch.GetTimestamp() * 1e6 / Stopwatch.Frequency);

    /// <summary>
    /// Median CPU time of the calling thread spent in <paramref name="action"/>, in microseconds (Linux
    /// CLOCK_THREAD_CPUTIME_ID; NaN elsewhere): on a shared machine it shows what preemption hides in wall time.
    /// </summary>
    public static double MedianThreadCpuMicroseconds(Action action, int iterations, int warmup = 2) =>
        MedianOf(action, iterations, warmup, ThreadCpuMicroseconds);

    private static double MedianOf(Action action, int iterations, int warmup, Func<double> nowMicroseconds)
    {
        for (var i = 0; i < warmup; i++) action();
        var samples = new double[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var start = nowMicroseconds();
            action();
            samples[i] = nowMicroseconds() - start;
        }
        return Median(samples);
    }

    private const int ClockThreadCpuTimeId = 3;

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec value);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private static double ThreadCpuMicroseconds() =>
        OperatingSystem.IsLinux() && ClockGetTime(ClockThreadCpuTimeId, out var t) == 0
            ? t.Seconds * 1e6 + t.Nanoseconds / 1e3
            : double.NaN;

    /// <summary>
    /// Requests per second of <paramref name="workers"/> closed-loop HTTP clients sharing one connection pool for
    /// <paramref name="duration"/>. <paramref name="request"/> sends one request as worker <c>w</c> and checks its
    /// answer (throwing when it is wrong), so a fast wrong server never counts.
    /// </summary>
    public static async Task<double> ClosedLoopRequestsPerSecondAsync(int workers, TimeSpan duration, Func<HttpClient, int, Task> request)
    {
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = workers, UseProxy = false };
        using var client = new HttpClient(handler);
        var stop = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var start = Stopwatch.GetTimestamp();
        var counts = await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
        {
            var n = 0;
            while (Stopwatch.GetTimestamp() < stop)
            {
                await request(client, w);
                n++;
            }
            return n;
        }));
        return counts.Sum() / Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    public static double Median(ReadOnlySpan<double> values) => Percentile(values, 0.5);

    /// <summary>Nearest-rank percentile (p in [0, 1]).</summary>
    public static double Percentile(ReadOnlySpan<double> values, double p)
    {
        if (values.IsEmpty) return double.NaN;
        var sorted = values.ToArray();
        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(p * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    /// <summary>Formats the closing line: <c>RESULT suite k=v ...</c> (invariant culture).</summary>
    public static string Result(string suite, IEnumerable<(string Key, object Value)> figures) =>
        $"RESULT {suite} " + string.Join(' ', figures.Select(f => $"{f.Key}={Format(f.Value)}"));

    private static string Format(object value) => value switch
    {
        double d => d.ToString(d >= 100 ? "F0" : d >= 1 ? "F2" : "G4", CultureInfo.InvariantCulture),
        float f => Format((double)f),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
