namespace Serverless.Privacy.Arithmetic;

/// <summary>
/// Negacyclic number-theoretic transform over Z_q[X]/(X^N + 1), with Harvey's butterflies
/// (Harvey 2014, "Faster arithmetic for number-theoretic transforms"): twiddles carry Shoup
/// quotients and values stay lazily in [0, 4q) between layers. The forward transform maps
/// coefficients to evaluations at ψ^(2·bitrev(i)+1), in bit-reversed order.
/// </summary>
internal sealed class NttTables
{
    private readonly ulong[] _rootPowers;        // ψ^bitrev(k)
    private readonly ulong[] _rootPowersShoup;
    private readonly ulong[] _invRootPowers;     // ψ^-bitrev(k), stored in the order the inverse walks them
    private readonly ulong[] _invRootPowersShoup;
    private readonly ulong _nInv;
    private readonly ulong _nInvShoup;
    private readonly ulong _lastInvTimesNInv;
    private readonly ulong _lastInvTimesNInvShoup;
    private readonly int _logN;

    public NttTables(Modulus modulus, int n)
    {
        Debug.Assert(BitOperations.IsPow2(n));
        Modulus = modulus;
        N = n;
        _logN = BitOperations.Log2((uint)n);
        var q = modulus.Value;
        if ((q - 1) % (2UL * (ulong)n) != 0) throw new ArgumentException($"{q} is not 1 mod 2N for N={n}");
        Root = Primes.MinimalPrimitiveRoot(q, 2 * n);
        var rootInv = modulus.Inverse(Root);
        _rootPowers = new ulong[n];
        _rootPowersShoup = new ulong[n];
        _invRootPowers = new ulong[n];
        _invRootPowersShoup = new ulong[n];
        ulong power = 1, invPower = 1;
        var pows = new ulong[n];
        var invPows = new ulong[n];
        for (var i = 0; i < n; i++)
        {
            pows[i] = power;
            invPows[i] = invPower;
            power = modulus.Mul(power, Root);
            invPower = modulus.Mul(invPower, rootInv);
        }
        for (var k = 0; k < n; k++)
        {
            var r = BitReverse(k, _logN);
            _rootPowers[k] = pows[r];
            _rootPowersShoup[k] = modulus.ShoupOf(pows[r]);
            _invRootPowers[k] = invPows[r];
            _invRootPowersShoup[k] = modulus.ShoupOf(invPows[r]);
        }
        _nInv = modulus.Inverse((ulong)n);
        _nInvShoup = modulus.ShoupOf(_nInv);
        _lastInvTimesNInv = modulus.Mul(_invRootPowers[1], _nInv);
        _lastInvTimesNInvShoup = modulus.ShoupOf(_lastInvTimesNInv);
    }

    public Modulus Modulus { get; }

    public int N { get; }

    /// <summary>The primitive 2N-th root of unity ψ the transform uses.</summary>
    public ulong Root { get; }

    public static int BitReverse(int x, int bits)
    {
        var r = 0;
        for (var i = 0; i < bits; i++) { r = (r << 1) | (x & 1); x >>= 1; }
        return r;
    }

    /// <summary>In-place forward transform; input in [0, q) (anything below 4q works), output in [0, q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Forward(Span<ulong> a)
    {
        Debug.Assert(a.Length == N);
        var q = Modulus.Value;
        var twoQ = 2 * q;
        var n = N;
        var t = n;
        ref var roots = ref _rootPowers[0];
        ref var rootsShoup = ref _rootPowersShoup[0];
        for (var m = 1; m < n >> 1; m <<= 1)
        {
            t >>= 1;
            for (var i = 0; i < m; i++)
            {
                var j1 = 2 * i * t;
                var w = System.Runtime.CompilerServices.Unsafe.Add(ref roots, m + i);
                var wp = System.Runtime.CompilerServices.Unsafe.Add(ref rootsShoup, m + i);
                var x = a.Slice(j1, t);
                var y = a.Slice(j1 + t, t);
                for (var j = 0; j < x.Length; j++)
                {
                    var u = Modulus.SubIfGe(x[j], twoQ);
                    var v = Modulus.MulShoupLazy(y[j], w, wp, q);
                    x[j] = u + v;
                    y[j] = u - v + twoQ;
                }
            }
        }
        // Last layer (t = 1) with the final reduction to [0, q) folded in.
        var half = n >> 1;
        for (var i = 0; i < half; i++)
        {
            var w = System.Runtime.CompilerServices.Unsafe.Add(ref roots, half + i);
            var wp = System.Runtime.CompilerServices.Unsafe.Add(ref rootsShoup, half + i);
            var u = Modulus.SubIfGe(a[2 * i], twoQ);
            var v = Modulus.MulShoupLazy(a[2 * i + 1], w, wp, q);
            a[2 * i] = Modulus.SubIfGe(Modulus.SubIfGe(u + v, twoQ), q);
            a[2 * i + 1] = Modulus.SubIfGe(Modulus.SubIfGe(u - v + twoQ, twoQ), q);
        }
    }

    /// <summary>In-place inverse transform; input in [0, 2q), output in [0, q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Inverse(Span<ulong> a)
    {
        Debug.Assert(a.Length == N);
        var q = Modulus.Value;
        var twoQ = 2 * q;
        var n = N;
        var t = 1;
        ref var roots = ref _invRootPowers[0];
        ref var rootsShoup = ref _invRootPowersShoup[0];
        for (var m = n; m > 2; m >>= 1)
        {
            var h = m >> 1;
            var j1 = 0;
            for (var i = 0; i < h; i++)
            {
                var w = System.Runtime.CompilerServices.Unsafe.Add(ref roots, h + i);
                var wp = System.Runtime.CompilerServices.Unsafe.Add(ref rootsShoup, h + i);
                var x = a.Slice(j1, t);
                var y = a.Slice(j1 + t, t);
                for (var j = 0; j < x.Length; j++)
                {
                    var u = x[j];
                    var v = y[j];
                    x[j] = Modulus.SubIfGe(u + v, twoQ);
                    y[j] = Modulus.MulShoupLazy(u - v + twoQ, w, wp, q);
                }
                j1 += 2 * t;
            }
            t <<= 1;
        }
        // Last layer with the 1/N scaling folded in (one pass fewer over the data).
        var nInv = _nInv;
        var nInvShoup = _nInvShoup;
        var wn = _lastInvTimesNInv;
        var wnShoup = _lastInvTimesNInvShoup;
        var lo = a[..t];
        var hi = a.Slice(t, t);
        for (var j = 0; j < lo.Length; j++)
        {
            var u = lo[j];
            var v = hi[j];
            lo[j] = Modulus.MulShoup(u + v, nInv, nInvShoup, q);
            hi[j] = Modulus.MulShoup(u - v + twoQ, wn, wnShoup, q);
        }
    }
}
