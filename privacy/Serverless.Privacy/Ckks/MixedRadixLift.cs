namespace Serverless.Privacy.Ckks;

/// <summary>
/// CRT lift of RNS residues over q_0···q_L to the centered integer, as a double, without
/// big integers: Garner's algorithm gives the mixed-radix digits x = a_0 + q_0(a_1 + q_1(a_2 + ···))
/// with word-sized modular arithmetic (Knuth, TAOCP vol. 2, §4.3.2), the digits compare
/// lexicographically with those of ⌊Q/2⌋ to pick the sign, and Horner's rule over positive digits
/// evaluates the magnitude with relative error below (L+1)·2^-53.
/// </summary>
internal sealed class MixedRadixLift
{
    private readonly ulong[] _q;
    private readonly double[] _qAsDouble;
    private readonly ulong[] _inv;       // [i·(L+1) + j] = q_j^-1 mod q_i, for j < i
    private readonly ulong[] _invShoup;
    private readonly ulong[] _bias;      // a multiple of q_i at least 2^61, so t + bias − a_j never wraps
    private readonly ulong[] _halfDigits; // mixed-radix digits of ⌊Q/2⌋

    public MixedRadixLift(IReadOnlyList<Modulus> moduli, int level)
    {
        Level = level;
        var count = level + 1;
        _q = new ulong[count];
        _qAsDouble = new double[count];
        _inv = new ulong[count * count];
        _invShoup = new ulong[count * count];
        _bias = new ulong[count];
        _halfDigits = new ulong[count];
        var product = BigInteger.One;
        for (var i = 0; i < count; i++)
        {
            var m = moduli[i];
            _q[i] = m.Value;
            _qAsDouble[i] = m.Value;
            _bias[i] = m.Value * ((Modulus.Limit + m.Value - 1) / m.Value);
            for (var j = 0; j < i; j++)
            {
                var inv = m.Inverse(m.Reduce(moduli[j].Value));
                _inv[i * count + j] = inv;
                _invShoup[i * count + j] = m.ShoupOf(inv);
            }
            product *= m.Value;
        }
        var half = product >> 1;
        for (var i = 0; i < count; i++)
        {
            _halfDigits[i] = (ulong)(half % _q[i]);
            half /= _q[i];
        }
    }

    public int Level { get; }

    /// <summary>The centered lift of residues[i·stride + k] (i ≤ Level); digits is scratch of Level+1 words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public double Lift(ReadOnlySpan<ulong> residues, int stride, int k, Span<ulong> digits)
    {
        var count = Level + 1;
        Debug.Assert(digits.Length >= count);
        digits[0] = residues[k];
        for (var i = 1; i < count; i++)
        {
            var q = _q[i];
            var t = residues[i * stride + k];
            var row = i * count;
            for (var j = 0; j < i; j++)
                t = Modulus.MulShoup(t + _bias[i] - digits[j], _inv[row + j], _invShoup[row + j], q);
            digits[i] = t;
        }
        var negative = false;
        for (var i = count - 1; i >= 0; i--)
        {
            if (digits[i] == _halfDigits[i]) continue;
            negative = digits[i] > _halfDigits[i];
            break;
        }
        if (!negative)
        {
            var v = (double)digits[count - 1];
            for (var i = count - 2; i >= 0; i--) v = v * _qAsDouble[i] + digits[i];
            return v;
        }
        // Q − x = (Q − 1 − x) + 1, and Q − 1 has the digits q_i − 1: no borrows.
        var c = (double)(_q[count - 1] - 1 - digits[count - 1]);
        for (var i = count - 2; i >= 0; i--) c = c * _qAsDouble[i] + (_q[i] - 1 - digits[i]);
        return -(c + 1);
    }
}
