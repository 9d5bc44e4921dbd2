namespace Serverless.Privacy.Arithmetic;

/// <summary>
/// An odd modulus below 2^61 with the constants for Barrett reduction of 128-bit products
/// and Shoup multiplication by precomputed constants. The 2^62 bound leaves room for the
/// lazy [0, 4q) representation the NTT butterflies use.
/// </summary>
internal sealed class Modulus
{
    /// <summary>Largest supported modulus (exclusive): 4q must stay below 2^63 for the branchless corrections.</summary>
    public const ulong Limit = 1UL << 61;

    // floor(2^128 / q) as two words.
    private readonly ulong _ratioHi;
    private readonly ulong _ratioLo;

    public Modulus(ulong value)
    {
        if (value < 3 || (value & 1) == 0 || value >= Limit)
            throw new ArgumentOutOfRangeException(nameof(value), value, "modulus must be odd, at least 3 and below 2^61");
        Value = value;
        BitCount = 64 - BitOperations.LeadingZeroCount(value);
        // q is odd, so floor((2^128 - 1) / q) == floor(2^128 / q).
        var ratio = UInt128.MaxValue / value;
        _ratioHi = (ulong)(ratio >> 64);
        _ratioLo = (ulong)ratio;
    }

    public ulong Value { get; }

    public int BitCount { get; }

    /// <summary>x mod q for any 128-bit x (Barrett).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Reduce(ulong hi, ulong lo)
    {
        // Estimate floor(x * ratio / 2^128) from the three significant partial products.
        var carry = Math.BigMul(lo, _ratioLo, out _);
        var midHi = Math.BigMul(lo, _ratioHi, out var midLo);
        var t1 = midLo + carry;
        var t3 = midHi + (t1 < midLo ? 1UL : 0UL);
        var m2Hi = Math.BigMul(hi, _ratioLo, out var m2Lo);
        var sum = t1 + m2Lo;
        carry = m2Hi + (sum < t1 ? 1UL : 0UL);
        var quotient = hi * _ratioHi + t3 + carry;
        var r = lo - quotient * Value;
        var q = Value;
        r = SubIfGe(r, q);
        r = SubIfGe(r, q);
        Debug.Assert(r < q);
        return r;
    }

    /// <summary>x mod q for a 64-bit x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Reduce(ulong x) => x < Value ? x : Reduce(0, x);

    /// <summary>a·b mod q.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Mul(ulong a, ulong b)
    {
        var hi = Math.BigMul(a, b, out var lo);
        return Reduce(hi, lo);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Add(ulong a, ulong b)
    {
        var s = a + b;
        return SubIfGe(s, Value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Sub(ulong a, ulong b)
    {
        var t = a - b;
        return t + (Value & (ulong)((long)t >> 63));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Negate(ulong a) => a == 0 ? 0 : Value - a;

    /// <summary>Shoup's precomputed quotient floor(w·2^64 / q) for a constant w &lt; q.</summary>
    public ulong ShoupOf(ulong w)
    {
        Debug.Assert(w < Value);
        return (ulong)(((UInt128)w << 64) / Value);
    }

    /// <summary>
    /// x − m if x ≥ m, else x, without a branch (random residues make that branch unpredictable,
    /// and mispredictions cost more than the arithmetic). Requires x, m &lt; 2^63.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SubIfGe(ulong x, ulong m)
    {
        var t = x - m;
        return t + (m & (ulong)((long)t >> 63));
    }

    /// <summary>x·w mod q in [0, 2q) for any 64-bit x, given w' = ShoupOf(w).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MulShoupLazy(ulong x, ulong w, ulong wShoup, ulong q)
    {
        var quotient = Math.BigMul(x, wShoup, out _);
        return x * w - quotient * q;
    }

    /// <summary>x·w mod q in [0, q), given w' = ShoupOf(w).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MulShoup(ulong x, ulong w, ulong wShoup, ulong q)
    {
        var r = MulShoupLazy(x, w, wShoup, q);
        return SubIfGe(r, q);
    }

    public ulong Pow(ulong a, ulong e)
    {
        ulong result = 1 % Value, b = Reduce(a);
        while (e != 0)
        {
            if ((e & 1) != 0) result = Mul(result, b);
            b = Mul(b, b);
            e >>= 1;
        }
        return result;
    }

    /// <summary>Inverse modulo a prime q (Fermat).</summary>
    public ulong Inverse(ulong a)
    {
        var r = Reduce(a);
        if (r == 0) throw new ArithmeticException("zero has no inverse");
        return Pow(r, Value - 2);
    }

    /// <summary>A signed integer reduced into [0, q).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong FromSigned(long x) => x >= 0 ? Reduce((ulong)x) : Negate(Reduce((ulong)(-(x + 1)) + 1));

    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
