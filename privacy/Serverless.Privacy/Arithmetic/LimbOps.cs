namespace Serverless.Privacy.Arithmetic;

/// <summary>Element-wise arithmetic on one RNS limb (N residues modulo one prime). No allocation.</summary>
internal static class LimbOps
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b, Span<ulong> dst, ulong q)
    {
        Debug.Assert(a.Length == b.Length && dst.Length == a.Length);
        for (var i = 0; i < dst.Length; i++)
        {
            var s = a[i] + b[i];
            dst[i] = Modulus.SubIfGe(s, q);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Sub(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b, Span<ulong> dst, ulong q)
    {
        Debug.Assert(a.Length == b.Length && dst.Length == a.Length);
        for (var i = 0; i < dst.Length; i++)
        {
            var t = a[i] - b[i];
            dst[i] = t + (q & (ulong)((long)t >> 63));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Negate(ReadOnlySpan<ulong> a, Span<ulong> dst, ulong q)
    {
        for (var i = 0; i < dst.Length; i++) dst[i] = a[i] == 0 ? 0 : q - a[i];
    }

    /// <summary>dst = a·b mod q, element-wise (Barrett).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Mul(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b, Span<ulong> dst, Modulus m)
    {
        Debug.Assert(a.Length == b.Length && dst.Length == a.Length);
        for (var i = 0; i < dst.Length; i++) dst[i] = m.Mul(a[i], b[i]);
    }

    /// <summary>dst = dst + a·b mod q, element-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MulAdd(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b, Span<ulong> dst, Modulus m)
    {
        var q = m.Value;
        for (var i = 0; i < dst.Length; i++)
        {
            var s = dst[i] + m.Mul(a[i], b[i]);
            dst[i] = Modulus.SubIfGe(s, q);
        }
    }

    /// <summary>dst = a·w mod q for a constant w &lt; q (Shoup).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MulScalar(ReadOnlySpan<ulong> a, ulong w, Span<ulong> dst, Modulus m)
    {
        var q = m.Value;
        var wp = m.ShoupOf(w);
        for (var i = 0; i < dst.Length; i++) dst[i] = Modulus.MulShoup(a[i], w, wp, q);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddScalar(ReadOnlySpan<ulong> a, ulong w, Span<ulong> dst, ulong q)
    {
        for (var i = 0; i < dst.Length; i++)
        {
            var s = a[i] + w;
            dst[i] = Modulus.SubIfGe(s, q);
        }
    }

    /// <summary>dst[i] = a[perm[i]].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Permute(ReadOnlySpan<ulong> a, ReadOnlySpan<int> perm, Span<ulong> dst)
    {
        for (var i = 0; i < dst.Length; i++) dst[i] = a[perm[i]];
    }
}
