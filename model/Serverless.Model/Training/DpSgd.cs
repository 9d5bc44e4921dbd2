using System.Diagnostics;
using System.Security.Cryptography;

namespace Serverless.Model.Training;

/// <summary>
/// DP-SGD (Abadi et al. 2016, "Deep Learning with Differential Privacy"): each step samples every record
/// independently with probability q (Poisson sampling, the assumption of the sampled-Gaussian RDP
/// analysis, Mironov et al. 2019), clips each sampled record's gradient to L2 norm <see cref="ClipNorm"/>,
/// sums, adds N(0, (sigma C)^2) per coordinate and divides by the expected batch size qN (not the drawn
/// size, which would leak it; as Opacus does). One patient is one record (one visit sequence), so the
/// guarantee is per patient. The accounting (RDP of the sampled Gaussian, composed over every step) is
/// the caller's: <see cref="PlannedSteps"/> is the number of steps a run takes, known before training.
/// </summary>
public sealed record DpSgdOptions
{
    /// <summary>C: the L2 bound on each record's gradient.</summary>
    public required double ClipNorm { get; init; }

    /// <summary>sigma: noise std on the sum of clipped gradients is sigma times C.</summary>
    public required double NoiseMultiplier { get; init; }

    /// <summary>L: the expected batch size; the sampling rate is q = L / records (capped at 1).</summary>
    public required int ExpectedBatchSize { get; init; }

    /// <summary>
    /// Source of the sampling and the noise. Null (production) draws from <see cref="RandomNumberGenerator"/>:
    /// an adversary who could predict either would undo the guarantee. Tests and benchmarks pass a seeded one.
    /// </summary>
    public Random? Randomness { get; init; }

    /// <exception cref="ArgumentOutOfRangeException">a value out of range.</exception>
    public DpSgdOptions Validated()
    {
        if (!(ClipNorm > 0) || !double.IsFinite(ClipNorm)) throw new ArgumentOutOfRangeException(nameof(ClipNorm), ClipNorm, "DP-SGD clip norm must be positive");
        if (!(NoiseMultiplier >= 0) || !double.IsFinite(NoiseMultiplier)) throw new ArgumentOutOfRangeException(nameof(NoiseMultiplier), NoiseMultiplier, "DP-SGD noise multiplier must be non-negative");
        if (ExpectedBatchSize is < 1 or > 65_536) throw new ArgumentOutOfRangeException(nameof(ExpectedBatchSize), ExpectedBatchSize, "1..65536");
        return this;
    }

    /// <summary>q = L / records, at most 1.</summary>
    public static double SamplingRate(int expectedBatchSize, int records)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(records, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(expectedBatchSize, 1);
        return Math.Min(1.0, expectedBatchSize / (double)records);
    }

    /// <summary>Steps in one epoch: ceil(records / L) Poisson-sampled batches (one pass in expectation).</summary>
    public static int StepsPerEpoch(int expectedBatchSize, int records)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(records, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(expectedBatchSize, 1);
        return (records + expectedBatchSize - 1) / expectedBatchSize;
    }

    /// <summary>The number of sampled batches (= accountant steps) a training run of <paramref name="epochs"/> takes (capped by maxSteps when positive).</summary>
    public static long PlannedSteps(int expectedBatchSize, int records, int epochs, int maxSteps = 0)
    {
        long steps = (long)StepsPerEpoch(expectedBatchSize, records) * epochs;
        return maxSteps > 0 ? Math.Min(steps, maxSteps) : steps;
    }
}

/// <summary>
/// Per-example gradients of the network, clipped and summed, with no allocation per example: each record
/// runs forward and backward (through time, for the LSTM) as a batch of one in a reused one-record
/// workspace, into one reused gradient buffer, which is clipped and added to the running sum. The
/// clipped gradient of one record therefore bounds that record's whole influence, BPTT included.
/// </summary>
internal sealed class PerExampleGradients
{
    private readonly Network<float> _net;
    private readonly Workspace<float> _ws;
    private readonly float[] _one;
    private readonly List<(int Offset, int Length)> _frozen;

    public PerExampleGradients(CnnLstm model, List<(int Offset, int Length)>? frozen = null)
    {
        _net = model.Network;
        _ws = _net.CreateWorkspace(1);
        _one = new float[model.ParameterCount];
        _frozen = frozen ?? [];
    }

    /// <summary>The last record's gradient after clipping (for tests).</summary>
    public ReadOnlySpan<float> LastGradient => _one;

    /// <summary>
    /// Adds record <paramref name="index"/>'s gradient, clipped to <paramref name="clipNorm"/>, to <paramref name="sum"/>.
    /// Returns the record's loss and its gradient norm before clipping.
    /// </summary>
    public (double Loss, double Norm) AccumulateClipped(ReadOnlySpan<float> p, SequenceDataset data, int index, double clipNorm, Span<float> sum)
    {
        Debug.Assert(sum.Length == _one.Length);
        var stride = data.Steps * data.Features;
        double loss = _net.LossAndGradient(p, data.Values.AsSpan(index * stride, stride), data.Mask.AsSpan(index * data.Steps, data.Steps),
            data.Labels.AsSpan(index, 1), 1, _ws, _one);
        foreach (var (offset, length) in _frozen) _one.AsSpan(offset, length).Clear();
        double sq = 0;
        foreach (var g in _one) sq += (double)g * g;
        var norm = Math.Sqrt(sq);
        var scale = norm > clipNorm ? (float)(clipNorm / norm) : 1f;
        var one = _one.AsSpan();
        for (var i = 0; i < one.Length; i++)
        {
            one[i] *= scale;
            sum[i] += one[i];
        }
        return (loss, norm);
    }
}

/// <summary>Gaussian noise for DP-SGD (Box-Muller over a <see cref="Random"/>), and the cryptographic default source.</summary>
internal static class DpNoise
{
    /// <summary>Adds i.i.d. N(0, std^2) to every entry.</summary>
    public static void AddGaussian(Span<float> values, double std, Random random)
    {
        if (std == 0) return;
        for (var i = 0; i < values.Length; i += 2)
        {
            var u1 = 1.0 - random.NextDouble(); // (0, 1]: log is finite
            var u2 = random.NextDouble();
            var r = Math.Sqrt(-2 * Math.Log(u1)) * std;
            values[i] += (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < values.Length) values[i + 1] += (float)(r * Math.Sin(2 * Math.PI * u2));
        }
    }

    /// <summary>A <see cref="Random"/> over <see cref="RandomNumberGenerator"/> (53-bit doubles).</summary>
    internal sealed class Cryptographic : Random
    {
        protected override double Sample() => NextDouble();

        public override double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

        public override int Next(int maxValue) => maxValue <= 1 ? 0 : RandomNumberGenerator.GetInt32(maxValue);

        private static ulong NextUInt64()
        {
            Span<byte> b = stackalloc byte[8];
            RandomNumberGenerator.Fill(b);
            return BitConverter.ToUInt64(b);
        }
    }
}
