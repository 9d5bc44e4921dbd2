using System.Buffers.Binary;

namespace Serverless.Privacy.Arithmetic;

/// <summary>
/// Secret randomness for the lattice schemes. Everything secret (keys, encryption masks, errors)
/// comes from <see cref="RandomNumberGenerator"/>; only the public uniform polynomials may be
/// expanded from a seed (see <see cref="UniformExpander"/>).
/// </summary>
internal static class Sampling
{
    /// <summary>Centered binomial distribution parameter: η = 21 gives σ = sqrt(η/2) ≈ 3.24,
    /// the error width of the HomomorphicEncryption.org standard (σ ≈ 3.2), bounded by 21.</summary>
    public const int BinomialEta = 21;

    /// <summary>Uniform ternary values in {-1, 0, 1}.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Ternary(Span<sbyte> destination)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(1024);
        try
        {
            var filled = 0;
            while (filled < destination.Length)
            {
                RandomNumberGenerator.Fill(buffer.AsSpan(0, 1024));
                for (var i = 0; i < 1024 && filled < destination.Length; i++)
                {
                    var b = buffer[i];
                    if (b >= 255) continue; // rejection keeps b % 3 exactly uniform
                    destination[filled++] = (sbyte)(b % 3 - 1);
                }
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>Centered binomial errors (η = 21): popcount of 21 random bits minus popcount of another 21.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Error(Span<sbyte> destination)
    {
        var words = ScratchPool.Rent(destination.Length);
        try
        {
            var span = words.AsSpan(0, destination.Length);
            RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(span));
            const ulong mask = (1UL << BinomialEta) - 1;
            for (var i = 0; i < destination.Length; i++)
            {
                var w = span[i];
                destination[i] = (sbyte)(BitOperations.PopCount(w & mask) - BitOperations.PopCount((w >> BinomialEta) & mask));
            }
            span.Clear();
        }
        finally { ScratchPool.Return(words); }
    }

    /// <summary>Writes small signed values into limb form modulo q.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SmallToLimb(ReadOnlySpan<sbyte> values, Span<ulong> limb, ulong q)
    {
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i];
            limb[i] = v >= 0 ? (ulong)v : q - (ulong)(-v);
        }
    }

    public static byte[] NewSeed()
    {
        var seed = new byte[UniformExpander.SeedLength];
        RandomNumberGenerator.Fill(seed);
        return seed;
    }
}

/// <summary>
/// Expands a 32-byte seed into polynomials uniform modulo each RNS prime: AES-256 in counter mode
/// (a standard CSPRNG construction, NIST SP 800-90A CTR_DRBG's core) keyed with the seed, one
/// counter domain per (purpose, limb), with rejection sampling below the largest multiple of q.
/// The seed is public; it only lets a recipient recompute the public polynomial `a`, so keys and
/// symmetric ciphertexts travel at half size.
/// </summary>
internal static class UniformExpander
{
    public const int SeedLength = 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Expand(ReadOnlySpan<byte> seed, uint domain, int limbIndex, ulong q, Span<ulong> destination)
    {
        if (seed.Length != SeedLength) throw new ArgumentException("seed must be 32 bytes", nameof(seed));
        using var aes = Aes.Create();
        aes.Key = seed.ToArray();
        var bits = 64 - BitOperations.LeadingZeroCount(q);
        var mask = bits == 64 ? ulong.MaxValue : (1UL << bits) - 1;
        const int blockWords = 512; // 4 KiB of keystream at a time
        var counters = ArrayPool<byte>.Shared.Rent(blockWords * 8);
        var stream = ArrayPool<byte>.Shared.Rent(blockWords * 8);
        try
        {
            ulong blockCounter = 0;
            var filled = 0;
            while (filled < destination.Length)
            {
                var c = counters.AsSpan(0, blockWords * 8);
                for (var b = 0; b < blockWords / 2; b++)
                {
                    var block = c.Slice(b * 16, 16);
                    BinaryPrimitives.WriteUInt32LittleEndian(block, domain);
                    BinaryPrimitives.WriteUInt32LittleEndian(block[4..], (uint)limbIndex);
                    BinaryPrimitives.WriteUInt64LittleEndian(block[8..], blockCounter++);
                }
                aes.EncryptEcb(c, stream.AsSpan(0, blockWords * 8), PaddingMode.None);
                for (var w = 0; w < blockWords && filled < destination.Length; w++)
                {
                    var value = BinaryPrimitives.ReadUInt64LittleEndian(stream.AsSpan(w * 8, 8)) & mask;
                    if (value < q) destination[filled++] = value;
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(counters);
            ArrayPool<byte>.Shared.Return(stream);
        }
    }
}
