using Serverless.Model.Preprocessing;

namespace Serverless.Federation.Rounds;

/// <summary>
/// Exact secure aggregation of standardization sums. Each value (count, sum or sum of squares) is
/// rounded to a signed 64-bit fixed-point integer with <c>FractionBits</c> fractional bits and split
/// into four 16-bit limbs (least significant first), one ring entry each in Z_(2^32). A limb sum of
/// fewer than 65,537 clients stays below 2^32, so the server recovers every limb sum exactly and
/// recombines them modulo 2^64: the total is exact (up to the per-client rounding of 2^-FractionBits).
/// </summary>
public static class StatisticsEncoding
{
    /// <summary>Ring width the statistics stage uses.</summary>
    public const int RingBits = 32;

    /// <summary>Default fractional bits.</summary>
    public const int DefaultFractionBits = 12;

    /// <summary>Ring entries per value.</summary>
    public const int LimbsPerValue = 4;

    /// <summary>Most clients whose limb sums cannot wrap.</summary>
    public const int MaxClients = 65_536;

    /// <summary>Ring vector length for <paramref name="columns"/> numeric columns.</summary>
    public static int VectorLength(int columns) => checked(3 * columns * LimbsPerValue);

    /// <summary>Encodes one client's sums.</summary>
    /// <exception cref="ArgumentException">a value is not finite or does not fit in 63 bits at this resolution.</exception>
    public static uint[] Encode(FeatureSums sums, int fractionBits = DefaultFractionBits)
    {
        ArgumentNullException.ThrowIfNull(sums);
        return Encode(sums.ToVector(), fractionBits);
    }

    /// <summary>Encodes a vector of reals (counts | sums | sums of squares, as <see cref="FeatureSums.ToVector"/>).</summary>
    public static uint[] Encode(ReadOnlySpan<double> values, int fractionBits = DefaultFractionBits)
    {
        CheckFractionBits(fractionBits);
        var scale = Math.Pow(2, fractionBits);
        var ring = new uint[values.Length * LimbsPerValue];
        for (var i = 0; i < values.Length; i++)
        {
            var scaled = Math.Round(values[i] * scale);
            if (!double.IsFinite(scaled) || Math.Abs(scaled) >= 4.611686018427387904E18 /* 2^62 */)
                throw new ArgumentException($"Statistic {i} ({values[i]}) is not finite or too large for {fractionBits} fractional bits.", nameof(values));
            var word = unchecked((ulong)(long)scaled);
            for (var j = 0; j < LimbsPerValue; j++) ring[i * LimbsPerValue + j] = (uint)((word >> (16 * j)) & 0xFFFF);
        }
        return ring;
    }

    /// <summary>Decodes the ring sum of at most <see cref="MaxClients"/> encodings into the summed reals.</summary>
    public static double[] Decode(ReadOnlySpan<uint> ringSum, int fractionBits = DefaultFractionBits)
    {
        CheckFractionBits(fractionBits);
        if (ringSum.Length % LimbsPerValue != 0) throw new ArgumentException($"Length {ringSum.Length} is not a multiple of {LimbsPerValue}.", nameof(ringSum));
        var scale = Math.Pow(2, fractionBits);
        var values = new double[ringSum.Length / LimbsPerValue];
        for (var i = 0; i < values.Length; i++)
        {
            ulong word = 0;
            for (var j = 0; j < LimbsPerValue; j++) word = unchecked(word + ((ulong)ringSum[i * LimbsPerValue + j] << (16 * j)));
            values[i] = unchecked((long)word) / scale;
        }
        return values;
    }

    /// <summary>Decodes into <see cref="FeatureSums"/> over <paramref name="columns"/>.</summary>
    public static FeatureSums DecodeSums(IReadOnlyList<string> columns, ReadOnlySpan<uint> ringSum, int fractionBits = DefaultFractionBits)
    {
        ArgumentNullException.ThrowIfNull(columns);
        if (ringSum.Length != VectorLength(columns.Count)) throw new ArgumentException($"Expected {VectorLength(columns.Count)} ring entries for {columns.Count} columns, got {ringSum.Length}.", nameof(ringSum));
        return FeatureSums.FromVector(columns, Decode(ringSum, fractionBits));
    }

    private static void CheckFractionBits(int fractionBits)
    {
        if (fractionBits is < 0 or > 30) throw new ArgumentOutOfRangeException(nameof(fractionBits), "Fraction bits must be 0..30.");
    }
}

/// <summary>
/// The training update in the ring: entries [w * delta | w * CoordinateBound / 2], each clamped to
/// ±CoordinateBound and stochastically rounded (unbiased) by <see cref="RingCodec"/>; the server
/// divides the decoded sum of the first entries by the decoded sum of weights. The weight entry sits
/// at half the range: at the full range, n clients all rounding it up would sum to 2^(k-1) and wrap
/// to a negative total (the codec's headroom is exact for values strictly inside the range).
/// </summary>
public static class UpdateEncoding
{
    /// <summary>The codec of an encoding.</summary>
    public static RingCodec Codec(UpdateRingEncoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        return new RingCodec(encoding.RingBits, encoding.CoordinateBound, encoding.MaxClients);
    }

    /// <summary>Encodes a clipped (and noised) delta with weight <paramref name="weight"/> in (0, 1].</summary>
    /// <exception cref="ArgumentException">wrong length or a weight outside (0, 1].</exception>
    public static uint[] Encode(ReadOnlySpan<float> delta, double weight, UpdateRingEncoding encoding, Random random)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        ArgumentNullException.ThrowIfNull(random);
        if (delta.Length != encoding.ParameterCount) throw new ArgumentException($"The delta has {delta.Length} entries, the model {encoding.ParameterCount}.", nameof(delta));
        if (!(weight > 0 && weight <= 1)) throw new ArgumentException($"Weight {weight} is outside (0, 1].", nameof(weight));
        var codec = Codec(encoding);
        var scaled = new float[delta.Length + 1];
        var w = (float)weight;
        for (var i = 0; i < delta.Length; i++) scaled[i] = delta[i] * w;
        var ring = new uint[scaled.Length];
        codec.EncodeStochastic(scaled, ring, random);
        // The weight entry in whole ring units, rounded stochastically (unbiased) and exact for a weight of 1.
        var units = weight * WeightUnits(codec, encoding);
        var floor = Math.Floor(units);
        ring[^1] = (uint)(long)(random.NextDouble() < units - floor ? floor + 1 : floor) & codec.Mask;
        return ring;
    }

    /// <summary>
    /// The weight entry's unit: about half the coordinate bound (so n full weights cannot wrap), rounded to a whole number of
    /// ring units so that a weight of 1 encodes exactly: in a narrow ring (b-bit quantization) stochastic rounding of the
    /// weight would make the total weight, and so every coordinate of the mean, off by up to a quantization step.
    /// </summary>
    private static double WeightUnits(RingCodec codec, UpdateRingEncoding encoding) => Math.Max(1, Math.Floor(codec.Scale * encoding.CoordinateBound / 2));

    private static double WeightUnit(RingCodec codec, UpdateRingEncoding encoding) => WeightUnits(codec, encoding) / codec.Scale;

    /// <summary>Decodes the ring sum into the weighted mean delta and the total weight.</summary>
    public static (float[] Mean, double TotalWeight) Decode(ReadOnlySpan<uint> ringSum, UpdateRingEncoding encoding)
    {
        ArgumentNullException.ThrowIfNull(encoding);
        if (ringSum.Length != encoding.ParameterCount + 1) throw new ArgumentException($"Expected {encoding.ParameterCount + 1} ring entries, got {ringSum.Length}.", nameof(ringSum));
        var decoded = new float[ringSum.Length];
        Codec(encoding).Decode(ringSum, decoded);
        var total = decoded[^1] / WeightUnit(Codec(encoding), encoding);
        var mean = new float[encoding.ParameterCount];
        if (total > 1e-9) for (var i = 0; i < mean.Length; i++) mean[i] = (float)(decoded[i] / total);
        return (mean, total);
    }
}
