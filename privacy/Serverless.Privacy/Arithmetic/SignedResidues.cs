using System.Runtime.InteropServices;

namespace Serverless.Privacy.Arithmetic;

/// <summary>
/// Signed 64-bit integers (stored as their two's-complement words) to residues in [0, q).
/// The encoder's rounded coefficients have random signs, so both loops are branchless.
/// </summary>
internal static class SignedResidues
{
    /// <summary>Every |x| &lt; q: a residue is x, or x + q for negative x. Vectorized.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LiftSmall(ReadOnlySpan<ulong> signed, ulong q, Span<ulong> dst)
    {
        Debug.Assert(signed.Length == dst.Length && q < Modulus.Limit);
        var i = 0;
        if (Vector.IsHardwareAccelerated && signed.Length >= Vector<ulong>.Count)
        {
            var src = MemoryMarshal.Cast<ulong, long>(signed);
            var vq = new Vector<long>((long)q);
            for (; i <= signed.Length - Vector<long>.Count; i += Vector<long>.Count)
            {
                var x = new Vector<long>(src[i..]);
                var r = x + (Vector.ShiftRightArithmetic(x, 63) & vq);
                Vector.AsVectorUInt64(r).CopyTo(dst[i..]);
            }
        }
        for (; i < signed.Length; i++)
        {
            var x = (long)signed[i];
            Debug.Assert(Math.Abs(x) < (long)q);
            dst[i] = (ulong)x + (q & (ulong)(x >> 63));
        }
    }

    /// <summary>Any x with |x| &lt; 2^63: x mod q in [0, q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Reduce(ReadOnlySpan<ulong> signed, Modulus m, Span<ulong> dst)
    {
        Debug.Assert(signed.Length == dst.Length);
        var q = m.Value;
        for (var i = 0; i < signed.Length; i++)
        {
            var x = (long)signed[i];
            var mask = x >> 63;                          // all ones for negative x
            var magnitude = (ulong)((x ^ mask) - mask);  // |x|, below 2^63
            var r = m.Reduce(magnitude);
            // −r + q for negative x (q itself when r = 0, folded by the final correction).
            var lifted = (ulong)(((long)r ^ mask) - mask) + (q & (ulong)mask);
            dst[i] = Modulus.SubIfGe(lifted, q);
        }
    }
}
