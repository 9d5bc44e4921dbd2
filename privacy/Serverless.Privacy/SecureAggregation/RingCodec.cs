using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// Fixed-point encoding of real vectors into the ring Z_(2^k) that secure aggregation sums in, and
/// the packing of ring vectors into bytes (k bits per entry). Each value is clamped to
/// [-<see cref="ClipRange"/>, +<see cref="ClipRange"/>] and scaled so that the sum of
/// <see cref="MaxClients"/> such values still fits in k-1 bits plus sign: the sum decodes exactly,
/// with no wrap-around, as long as at most <see cref="MaxClients"/> inputs are added.
/// </summary>
public sealed record RingCodec
{
    /// <summary>Ring width k in bits (2..32).</summary>
    public int RingBits { get; }

    /// <summary>Per-coordinate bound before encoding.</summary>
    public float ClipRange { get; }

    /// <summary>Number of inputs whose sum must not wrap.</summary>
    public int MaxClients { get; }

    /// <summary>Units per 1.0: floor((2^(k-1) - 1) / (MaxClients * ClipRange)).</summary>
    public double Scale { get; }

    /// <exception cref="ArgumentOutOfRangeException">k outside [2, 32], a non-positive range or client count, or no resolution left.</exception>
    public RingCodec(int ringBits, float clipRange, int maxClients)
    {
        if (ringBits is < 2 or > 32) throw new ArgumentOutOfRangeException(nameof(ringBits), "Ring width must be 2..32 bits.");
        if (!(clipRange > 0) || float.IsInfinity(clipRange)) throw new ArgumentOutOfRangeException(nameof(clipRange), "Clip range must be positive and finite.");
        if (maxClients < 1) throw new ArgumentOutOfRangeException(nameof(maxClients), "At least one client.");
        RingBits = ringBits;
        ClipRange = clipRange;
        MaxClients = maxClients;
        Scale = Math.Floor((Math.Pow(2, ringBits - 1) - 1) / ((double)maxClients * clipRange));
        if (Scale < 1) throw new ArgumentOutOfRangeException(nameof(ringBits), $"A {ringBits}-bit ring has no headroom for {maxClients} clients at range {clipRange}.");
    }

    /// <summary>2^k - 1 (all ones for k = 32).</summary>
    public uint Mask => RingMask(RingBits);

    /// <summary>Bytes a packed vector of <paramref name="length"/> entries occupies.</summary>
    public int PackedLength(int length) => PackedLength(length, RingBits);

    internal static uint RingMask(int bits) => bits == 32 ? uint.MaxValue : (1u << bits) - 1;

    /// <summary>Packed byte length of <paramref name="length"/> entries of <paramref name="bits"/> bits.</summary>
    public static int PackedLength(int length, int bits) => checked((int)(((long)length * bits + 7) / 8));

    /// <summary>Encodes with rounding to nearest (deterministic).</summary>
    public void Encode(ReadOnlySpan<float> values, Span<uint> destination)
    {
        if (destination.Length != values.Length) throw new ArgumentException("Destination length differs.", nameof(destination));
        var mask = Mask;
        for (var i = 0; i < values.Length; i++)
        {
            var v = Math.Clamp(values[i], -ClipRange, ClipRange);
            if (float.IsNaN(v)) throw new ArgumentException($"Value {i} is NaN.", nameof(values));
            destination[i] = (uint)(long)Math.Round(v * Scale) & mask;
        }
    }

    /// <summary>Encodes with unbiased stochastic rounding (E[decode(encode(x))] = clamp(x)).</summary>
    public void EncodeStochastic(ReadOnlySpan<float> values, Span<uint> destination, Random random)
    {
        if (destination.Length != values.Length) throw new ArgumentException("Destination length differs.", nameof(destination));
        var mask = Mask;
        for (var i = 0; i < values.Length; i++)
        {
            var v = Math.Clamp(values[i], -ClipRange, ClipRange);
            if (float.IsNaN(v)) throw new ArgumentException($"Value {i} is NaN.", nameof(values));
            var scaled = v * Scale;
            var floor = Math.Floor(scaled);
            var q = random.NextDouble() < scaled - floor ? floor + 1 : floor;
            destination[i] = (uint)(long)q & mask;
        }
    }

    /// <summary>Decodes a ring vector (for example a sum) back to reals, reading entries as signed k-bit integers.</summary>
    public void Decode(ReadOnlySpan<uint> ring, Span<float> destination)
    {
        if (destination.Length != ring.Length) throw new ArgumentException("Destination length differs.", nameof(destination));
        for (var i = 0; i < ring.Length; i++) destination[i] = (float)(ToSigned(ring[i]) / Scale);
    }

    /// <summary>Reads a ring element as a signed k-bit integer.</summary>
    public long ToSigned(uint value)
    {
        value &= Mask;
        var half = 1L << (RingBits - 1);
        return value >= half ? value - (1L << RingBits) : value;
    }

    /// <summary>Packs ring entries (each &lt; 2^bits) into bytes, little-endian bit order.</summary>
    public static void Pack(ReadOnlySpan<uint> values, int bits, Span<byte> destination)
    {
        if (destination.Length != PackedLength(values.Length, bits)) throw new ArgumentException("Destination length differs.", nameof(destination));
        if (bits == 32 && BitConverter.IsLittleEndian) { MemoryMarshal.AsBytes(values).CopyTo(destination); return; }
        if (bits == 16) { for (var i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(destination[(2 * i)..], (ushort)values[i]); return; }
        if (bits == 8) { for (var i = 0; i < values.Length; i++) destination[i] = (byte)values[i]; return; }
        destination.Clear();
        var mask = RingMask(bits);
        ulong acc = 0; var filled = 0; var o = 0;
        foreach (var v in values)
        {
            acc |= (ulong)(v & mask) << filled;
            filled += bits;
            while (filled >= 8) { destination[o++] = (byte)acc; acc >>= 8; filled -= 8; }
        }
        if (filled > 0) destination[o] = (byte)acc;
    }

    /// <summary>Adds packed entries into <paramref name="accumulator"/> (mod 2^32) without unpacking into a temporary.</summary>
    public static void UnpackAdd(ReadOnlySpan<byte> packed, int bits, Span<uint> accumulator)
    {
        if (packed.Length != PackedLength(accumulator.Length, bits)) throw new ArgumentException("Packed length differs.", nameof(packed));
        if (bits == 32 && BitConverter.IsLittleEndian) { MaskExpander.AddInto(accumulator, MemoryMarshal.Cast<byte, uint>(packed)); return; }
        var mask = RingMask(bits);
        ulong acc = 0; var filled = 0; var p = 0;
        for (var i = 0; i < accumulator.Length; i++)
        {
            while (filled < bits) { acc |= (ulong)packed[p++] << filled; filled += 8; }
            accumulator[i] += (uint)acc & mask;
            acc >>= bits; filled -= bits;
        }
    }

    /// <summary>Unpacks into <paramref name="destination"/>.</summary>
    public static void Unpack(ReadOnlySpan<byte> packed, int bits, Span<uint> destination)
    {
        destination.Clear();
        UnpackAdd(packed, bits, destination);
    }
}
