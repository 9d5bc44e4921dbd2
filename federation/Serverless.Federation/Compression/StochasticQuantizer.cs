namespace Serverless.Federation.Compression;

/// <summary>A vector quantized to <see cref="Bits"/> bits per entry, with per-chunk min and max.</summary>
public sealed record QuantizedVector(int Length, int Bits, int ChunkSize, float[] Mins, float[] Maxs, byte[] Levels);

/// <summary>
/// Unbiased stochastic quantization (QSGD-style, Alistarh et al. 2017; per-chunk min/max scaling as in
/// Suresh et al. 2017): each entry x of a chunk with range [lo, hi] maps to one of 2^b evenly spaced
/// levels, rounding up with probability equal to the fractional position, so E[decode(q)] = x exactly
/// and |decode(q) - x| &lt;= (hi - lo)/(2^b - 1).
/// </summary>
public static class StochasticQuantizer
{
    /// <summary>Quantizes with randomness from <paramref name="random"/> (seeded in simulations).</summary>
    /// <exception cref="ArgumentOutOfRangeException">bits outside [1, 16] or a non-positive chunk size.</exception>
    /// <exception cref="ArgumentException">a NaN or infinite entry.</exception>
    public static QuantizedVector Quantize(ReadOnlySpan<float> values, int bits, int chunkSize, Random random)
    {
        if (bits is < 1 or > 16) throw new ArgumentOutOfRangeException(nameof(bits), "1..16 bits per entry.");
        if (chunkSize < 1) throw new ArgumentOutOfRangeException(nameof(chunkSize));
        ArgumentNullException.ThrowIfNull(random);
        var chunks = (values.Length + chunkSize - 1) / chunkSize;
        var mins = new float[chunks];
        var maxs = new float[chunks];
        var levels = new uint[values.Length];
        var top = (1u << bits) - 1;
        for (var c = 0; c < chunks; c++)
        {
            var chunk = values.Slice(c * chunkSize, Math.Min(chunkSize, values.Length - c * chunkSize));
            float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
            foreach (var v in chunk)
            {
                if (!float.IsFinite(v)) throw new ArgumentException("Cannot quantize NaN or infinity.", nameof(values));
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            mins[c] = lo;
            maxs[c] = hi;
            var step = ((double)hi - lo) / top;
            for (var i = 0; i < chunk.Length; i++)
            {
                if (step == 0) { levels[c * chunkSize + i] = 0; continue; }
                var pos = (chunk[i] - (double)lo) / step;
                var floor = Math.Floor(pos);
                var q = floor + (random.NextDouble() < pos - floor ? 1 : 0);
                levels[c * chunkSize + i] = (uint)Math.Clamp(q, 0, top);
            }
        }
        var packed = new byte[RingCodec.PackedLength(values.Length, bits)];
        RingCodec.Pack(levels, bits, packed);
        return new QuantizedVector(values.Length, bits, chunkSize, mins, maxs, packed);
    }

    /// <summary>Reconstructs the (unbiased) estimate.</summary>
    /// <exception cref="ArgumentException">the vector's fields disagree with each other or with the destination.</exception>
    public static void Dequantize(QuantizedVector q, Span<float> destination)
    {
        Validate(q);
        if (destination.Length != q.Length) throw new ArgumentException("Destination length differs.", nameof(destination));
        var levels = new uint[q.Length];
        RingCodec.Unpack(q.Levels, q.Bits, levels);
        var top = (1u << q.Bits) - 1;
        for (var c = 0; c < q.Mins.Length; c++)
        {
            double lo = q.Mins[c], step = ((double)q.Maxs[c] - lo) / top;
            var end = Math.Min(q.Length, (c + 1) * q.ChunkSize);
            for (var i = c * q.ChunkSize; i < end; i++) destination[i] = (float)(lo + levels[i] * step);
        }
    }

    /// <summary>The largest possible error of one entry in chunk <paramref name="chunk"/>.</summary>
    public static double ErrorBound(QuantizedVector q, int chunk) => ((double)q.Maxs[chunk] - q.Mins[chunk]) / ((1u << q.Bits) - 1);

    internal static void Validate(QuantizedVector q)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.Bits is < 1 or > 16 || q.ChunkSize < 1 || q.Length < 0) throw new ArgumentException("Quantized vector has invalid bits, chunk size or length.");
        var chunks = (q.Length + q.ChunkSize - 1) / q.ChunkSize;
        if (q.Mins is null || q.Maxs is null || q.Mins.Length != chunks || q.Maxs.Length != chunks) throw new ArgumentException("Quantized vector has the wrong number of chunk ranges.");
        for (var c = 0; c < chunks; c++)
            if (!float.IsFinite(q.Mins[c]) || !float.IsFinite(q.Maxs[c]) || q.Mins[c] > q.Maxs[c]) throw new ArgumentException($"Chunk {c} has an invalid range.");
        if (q.Levels is null || q.Levels.Length != RingCodec.PackedLength(q.Length, q.Bits)) throw new ArgumentException("Quantized vector has the wrong packed length.");
    }
}
