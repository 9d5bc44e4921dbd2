using System.Runtime.InteropServices;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// The protocol's PRG: AES-256 in counter mode (NIST SP 800-38A) keyed by a 32-byte seed, producing
/// 32-bit ring words. .NET exposes no CTR mode, so the keystream is AES-ECB over counter blocks;
/// because the counter sequence 0, 1, 2, ... is the same for every seed (only the key changes), one
/// shared buffer of counter blocks serves every expansion, and each chunk is one large EncryptEcb
/// call (AES-NI, pipelined) followed by a vectorised add into the accumulator. This is the server's
/// hot loop.
/// </summary>
public static class MaskExpander
{
    /// <summary>Words per chunk: 16 KiB of keystream stays in L1/L2 between encryption and the add.</summary>
    private const int ChunkWords = 4096;

    private static readonly byte[] Counters = BuildCounters(ChunkWords);

    /// <summary>Adds (or subtracts) PRG(<paramref name="seed"/>) into <paramref name="accumulator"/>, mod 2^32.</summary>
    /// <exception cref="ArgumentException">the seed is not 32 bytes.</exception>
    public static void Apply(ReadOnlySpan<byte> seed, Span<uint> accumulator, bool subtract)
    {
        if (seed.Length != 32) throw new ArgumentException("A mask seed is 32 bytes.", nameof(seed));
        using var aes = Aes.Create();
        aes.Key = seed.ToArray();
        var scratch = ArrayPool<byte>.Shared.Rent(ChunkWords * 4);
        try
        {
            for (long offset = 0, block = 0; offset < accumulator.Length; offset += ChunkWords, block += ChunkWords / 4)
            {
                var words = (int)Math.Min(ChunkWords, accumulator.Length - offset);
                var blocks = (words + 3) / 4;
                var bytes = blocks * 16;
                var counters = CountersFor(block, blocks);
                aes.EncryptEcb(counters[..bytes], scratch.AsSpan(0, bytes), PaddingMode.None);
                var stream = MemoryMarshal.Cast<byte, uint>(scratch.AsSpan(0, bytes))[..words];
                var target = accumulator.Slice((int)offset, words);
                if (subtract) SubtractInto(target, stream); else AddInto(target, stream);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch, clearArray: true);
        }
    }

    /// <summary>Writes PRG(<paramref name="seed"/>) into <paramref name="destination"/>.</summary>
    public static void Expand(ReadOnlySpan<byte> seed, Span<uint> destination)
    {
        destination.Clear();
        Apply(seed, destination, subtract: false);
    }

    // Counter blocks are little-endian 64-bit block indices in the first 8 bytes. The shared buffer
    // holds blocks 0..ChunkWords/4-1 of the first chunk; later chunks differ only in the high part of
    // the index, which we put in bytes 8..15 so the shared low part can be reused unchanged.
    private static ReadOnlySpan<byte> CountersFor(long firstBlock, int blocks)
    {
        Debug.Assert(firstBlock % (ChunkWords / 4) == 0);
        var chunkIndex = firstBlock / (ChunkWords / 4);
        if (chunkIndex == 0) return Counters.AsSpan(0, blocks * 16);
        return ChunkCounters(chunkIndex).AsSpan(0, blocks * 16);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<long, byte[]> ChunkCache = new();

    private static byte[] ChunkCounters(long chunkIndex) =>
        ChunkCache.GetOrAdd(chunkIndex, static c =>
        {
            var buf = (byte[])Counters.Clone();
            for (var i = 0; i < buf.Length; i += 16)
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(buf.AsSpan(i + 8), c);
            return buf;
        });

    private static byte[] BuildCounters(int words)
    {
        var blocks = words / 4;
        var buf = new byte[blocks * 16];
        for (var i = 0; i < blocks; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(buf.AsSpan(i * 16), i);
        return buf;
    }

    /// <summary>target[i] += source[i] (mod 2^32), vectorised.</summary>
    public static void AddInto(Span<uint> target, ReadOnlySpan<uint> source)
    {
        Debug.Assert(target.Length == source.Length);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var tv = MemoryMarshal.Cast<uint, Vector<uint>>(target);
            var sv = MemoryMarshal.Cast<uint, Vector<uint>>(source);
            for (var k = 0; k < tv.Length; k++) tv[k] += sv[k];
            i = tv.Length * Vector<uint>.Count;
        }
        for (; i < target.Length; i++) target[i] += source[i];
    }

    /// <summary>target[i] -= source[i] (mod 2^32), vectorised.</summary>
    public static void SubtractInto(Span<uint> target, ReadOnlySpan<uint> source)
    {
        Debug.Assert(target.Length == source.Length);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var tv = MemoryMarshal.Cast<uint, Vector<uint>>(target);
            var sv = MemoryMarshal.Cast<uint, Vector<uint>>(source);
            for (var k = 0; k < tv.Length; k++) tv[k] -= sv[k];
            i = tv.Length * Vector<uint>.Count;
        }
        for (; i < target.Length; i++) target[i] -= source[i];
    }
}
