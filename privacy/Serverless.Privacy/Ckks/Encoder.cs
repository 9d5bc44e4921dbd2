using System.Runtime.InteropServices;

namespace Serverless.Privacy.Ckks;

/// <summary>
/// Maps vectors of up to N/2 complex (or real) numbers to plaintext polynomials and back through
/// the canonical embedding: slot j holds m(ζ^(5^j)) with ζ = e^(iπ/N), so the automorphism
/// X → X^5 rotates the slots left by one. The "special FFT" (Cheon, Kim, Kim, Song 2017) evaluates
/// that embedding in O(N log N).
/// </summary>
public sealed class Encoder
{
    private readonly CkksContext _context;
    private readonly Complex[][] _conjugateTwiddles; // the inverse FFT's twiddles, conjugated once
    private readonly int[] _bitReverseSwaps;         // (i, j) pairs with i < j = bitrev(i), flattened
    private readonly MixedRadixLift?[] _lifts;       // per level, built on first decode there

    public Encoder(CkksContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _context = context;
        var twiddles = context.FftTwiddles;
        _conjugateTwiddles = new Complex[twiddles.Length][];
        for (var l = 0; l < twiddles.Length; l++)
        {
            if (twiddles[l] is null) continue;
            _conjugateTwiddles[l] = new Complex[twiddles[l].Length];
            for (var j = 0; j < twiddles[l].Length; j++) _conjugateTwiddles[l][j] = Complex.Conjugate(twiddles[l][j]);
        }
        var size = context.Slots;
        var bits = BitOperations.Log2((uint)size);
        var swaps = new List<int>(size);
        for (var i = 0; i < size; i++)
        {
            var r = NttTables.BitReverse(i, bits);
            if (i < r) { swaps.Add(i); swaps.Add(r); }
        }
        _bitReverseSwaps = swaps.ToArray();
        _lifts = new MixedRadixLift?[context.MaxLevel + 1];
    }

    public int SlotCount => _context.Slots;

    /// <summary>Encodes real values at the top level and default scale Δ.</summary>
    public Plaintext Encode(ReadOnlySpan<double> values)
    {
        var pt = new Plaintext(_context);
        Encode(values, _context.Parameters.Scale, _context.MaxLevel, pt);
        return pt;
    }

    /// <summary>Encodes real values (missing slots are zero).</summary>
    /// <exception cref="ArgumentException">More values than slots, a non-finite value, or a scaled value beyond the modulus.</exception>
    public void Encode(ReadOnlySpan<double> values, double scale, int level, Plaintext destination)
    {
        var slots = RentSlots(values.Length, out var buffer);
        try
        {
            for (var i = 0; i < values.Length; i++) slots[i] = values[i];
            EncodeSlots(slots, scale, level, destination);
        }
        finally { ArrayPool<Complex>.Shared.Return(buffer, clearArray: true); }
    }

    /// <summary>Encodes complex values (missing slots are zero).</summary>
    public void Encode(ReadOnlySpan<Complex> values, double scale, int level, Plaintext destination)
    {
        var slots = RentSlots(values.Length, out var buffer);
        try
        {
            values.CopyTo(slots);
            EncodeSlots(slots, scale, level, destination);
        }
        finally { ArrayPool<Complex>.Shared.Return(buffer, clearArray: true); }
    }

    // All slots, zeroed, from the pool (the caller returns the buffer, cleared: it held the values).
    private Span<Complex> RentSlots(int count, out Complex[] buffer)
    {
        if (count > _context.Slots)
            throw new ArgumentException($"cannot Encode: {count} values but only {_context.Slots} slots", "values");
        buffer = ArrayPool<Complex>.Shared.Rent(_context.Slots);
        var slots = buffer.AsSpan(0, _context.Slots);
        slots.Clear();
        return slots;
    }

    /// <summary>Encodes the same real value in every slot (a constant polynomial).</summary>
    public void Encode(double value, double scale, int level, Plaintext destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ValidateTarget(scale, level, destination);
        var scaled = Math.Round(value * scale);
        if (!double.IsFinite(scaled)) throw new ArgumentException("cannot Encode: value times scale is not finite", nameof(value));
        destination.Reshape(level);
        destination.Scale = scale;
        var n = _context.N;
        for (var i = 0; i <= level; i++)
            destination.Limb(i).Fill(ScaledToResidue(scaled, _context.Moduli[i]));
    }

    /// <summary>Decodes all slots as complex numbers.</summary>
    public void Decode(Plaintext plaintext, Span<Complex> destination)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        _context.RequireOwned(plaintext.Context, "cannot Decode: the plaintext", nameof(plaintext));
        if (destination.Length < _context.Slots)
            throw new ArgumentException($"cannot Decode: destination holds {destination.Length} values, need {_context.Slots}", nameof(destination));
        var n = _context.N;
        var half = _context.Slots;
        var coeffs = ArrayPool<double>.Shared.Rent(n);
        try
        {
            ToCenteredCoefficients(plaintext, coeffs.AsSpan(0, n));
            var slots = destination[..half];
            var inv = 1.0 / plaintext.Scale;
            for (var i = 0; i < half; i++) slots[i] = new Complex(coeffs[i] * inv, coeffs[i + half] * inv);
            SpecialFft(slots);
        }
        finally { ArrayPool<double>.Shared.Return(coeffs, clearArray: true); }
    }

    /// <summary>Decodes the real parts of all slots.</summary>
    public double[] DecodeReal(Plaintext plaintext)
    {
        var slots = new Complex[_context.Slots];
        Decode(plaintext, slots);
        var result = new double[slots.Length];
        for (var i = 0; i < slots.Length; i++) result[i] = slots[i].Real;
        return result;
    }

    private void ValidateTarget(double scale, int level, Plaintext destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        _context.RequireOwned(destination.Context, "cannot Encode: the destination", nameof(destination));
        _context.CheckLevel(level, nameof(level));
        if (!double.IsFinite(scale) || scale < 1 || Math.Log2(scale) > 120)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be finite, at least 1 and at most 2^120");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void EncodeSlots(Span<Complex> slots, double scale, int level, Plaintext destination)
    {
        ValidateTarget(scale, level, destination);
        var n = _context.N;
        var half = _context.Slots;
        foreach (var z in slots)
            if (!double.IsFinite(z.Real) || !double.IsFinite(z.Imaginary)) throw new ArgumentException("cannot Encode: values must be finite");
        SpecialFftInverse(slots, normalize: false);
        destination.Reshape(level);
        destination.Scale = scale;
        var coeffs = ArrayPool<double>.Shared.Rent(n);
        var signed = ScratchPool.Rent(n);
        try
        {
            // Limit: the scaled coefficient must stay well inside q_0···q_level / 2.
            var limit = Math.Pow(2, _context.Crt(level).Product.GetBitLength() - 2);
            // The inverse FFT's 1/size is a power of two, so folding it into the scale rounds
            // exactly like normalizing first and scaling after (one rounding of the same product).
            var factor = scale * (1.0 / half);
            var maxAbs = 0.0;
            for (var i = 0; i < half; i++)
            {
                var re = Math.Round(slots[i].Real * factor);
                var im = Math.Round(slots[i].Imaginary * factor);
                coeffs[i] = re;
                coeffs[i + half] = im;
                var a = Math.Max(Math.Abs(re), Math.Abs(im));
                if (!(a < limit))
                    throw new ArgumentException($"cannot Encode: a value times the scale 2^{Math.Log2(scale):0.#} exceeds the modulus at level {level}; use smaller values or a smaller scale");
                if (a > maxAbs) maxAbs = a;
            }
            if (maxAbs < 9.2e18)
            {
                // Fast path: every coefficient fits a long; convert once, then one reduction per limb
                // (none at all in limbs whose modulus exceeds every |coefficient|).
                for (var k = 0; k < n; k++) signed[k] = (ulong)(long)coeffs[k];
                var small = (ulong)maxAbs;
                _context.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
                {
                    var m = _context.Moduli[i];
                    var limb = destination.Limb(i);
                    var source = signed.AsSpan(0, n);
                    if (small < m.Value) SignedResidues.LiftSmall(source, m.Value, limb);
                    else SignedResidues.Reduce(source, m, limb);
                    _context.Ntt[i].Forward(limb);
                });
            }
            else
            {
                _context.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
                {
                    var m = _context.Moduli[i];
                    var limb = destination.Limb(i);
                    for (var k = 0; k < n; k++) limb[k] = ScaledToResidue(coeffs[k], m);
                    _context.Ntt[i].Forward(limb);
                });
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(coeffs, clearArray: true);
            ScratchPool.ReturnSecret(signed);
        }
    }

    /// <summary>An integral double (already rounded) reduced modulo q.</summary>
    internal static ulong ScaledToResidue(double value, Modulus m)
    {
        if (Math.Abs(value) < 9.2e18) return m.FromSigned((long)value);
        var big = new BigInteger(value) % m.Value;
        if (big.Sign < 0) big += m.Value;
        return (ulong)big;
    }

    /// <summary>
    /// The plaintext polynomial's coefficients, centered in (−Q/2, Q/2] and rounded to doubles (inverse NTT,
    /// CRT lift). A decryption minus the expected encoding, coefficient by coefficient, is the ciphertext's
    /// noise: what noise analysis and flooding tests measure.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="coeffs"/> is shorter than N.</exception>
    public void ToCenteredCoefficients(Plaintext plaintext, Span<double> coeffs)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        if (coeffs.Length < _context.N) throw new ArgumentException($"the destination holds {coeffs.Length} coefficients, N is {_context.N}", nameof(coeffs));
        var n = _context.N;
        var level = plaintext.Level;
        var limbs = ScratchPool.Rent((level + 1) * n);
        try
        {
            var data = limbs.AsSpan(0, (level + 1) * n);
            plaintext.Poly.CopyTo(data);
            _context.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) => _context.Ntt[i].Inverse(limbs.AsSpan(i * n, n)));
            if (level == 0)
            {
                var q = _context.Moduli[0].Value;
                var halfQ = q >> 1;
                for (var k = 0; k < n; k++)
                {
                    var v = data[k];
                    coeffs[k] = v > halfQ ? -(double)(q - v) : v;
                }
                return;
            }
            var lift = _lifts[level] ??= new MixedRadixLift(_context.Moduli, level);
            var result = ArrayPool<double>.Shared.Rent(n);
            var residues = limbs.AsSpan(0, (level + 1) * n);
            Span<ulong> digits = stackalloc ulong[level + 1];
            if (!_context.ParallelLimbs || n < 8192)
            {
                for (var k = 0; k < n; k++) result[k] = lift.Lift(residues, n, k, digits);
            }
            else
            {
                Parallel.For(0, 2, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (part) =>
                {
                    Span<ulong> scratch = stackalloc ulong[level + 1];
                    var words = limbs.AsSpan(0, (level + 1) * n);
                    for (var k = part * n / 2; k < (part + 1) * n / 2; k++) result[k] = lift.Lift(words, n, k, scratch);
                });
            }
            result.AsSpan(0, n).CopyTo(coeffs);
            ArrayPool<double>.Shared.Return(result, clearArray: true);
        }
        finally { ScratchPool.ReturnSecret(limbs); }
    }

    // Evaluates v(X) = Σ v_k X^k at X = ζ^(5^j) for j < n, in place (bit-reversed input order).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void SpecialFft(Span<Complex> vals)
    {
        Debug.Assert(vals.Length == _context.Slots);
        var size = vals.Length;
        var twiddles = _context.FftTwiddles;
        BitReverse(vals);
        ref var v0 = ref MemoryMarshal.GetReference(vals);
        for (var len = 2; len <= size; len <<= 1)
        {
            var lenh = len >> 1;
            var tw = twiddles[BitOperations.Log2((uint)len)];
            ref var w0 = ref MemoryMarshal.GetArrayDataReference(tw);
            for (var i = 0; i < size; i += len)
            {
                ref var lo = ref Unsafe.Add(ref v0, i);
                ref var hi = ref Unsafe.Add(ref v0, i + lenh);
                for (var j = 0; j < lenh; j++)
                {
                    var u = Unsafe.Add(ref lo, j);
                    var v = Unsafe.Add(ref hi, j) * Unsafe.Add(ref w0, j);
                    Unsafe.Add(ref lo, j) = u + v;
                    Unsafe.Add(ref hi, j) = u - v;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void SpecialFftInverse(Span<Complex> vals) => SpecialFftInverse(vals, normalize: true);

    // Without normalize the result is size times the inverse (the caller folds 1/size into its scale).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void SpecialFftInverse(Span<Complex> vals, bool normalize)
    {
        Debug.Assert(vals.Length == _context.Slots);
        var size = vals.Length;
        ref var v0 = ref MemoryMarshal.GetReference(vals);
        for (var len = size; len >= 2; len >>= 1)
        {
            var lenh = len >> 1;
            ref var w0 = ref MemoryMarshal.GetArrayDataReference(_conjugateTwiddles[BitOperations.Log2((uint)len)]);
            for (var i = 0; i < size; i += len)
            {
                ref var lo = ref Unsafe.Add(ref v0, i);
                ref var hi = ref Unsafe.Add(ref v0, i + lenh);
                for (var j = 0; j < lenh; j++)
                {
                    var a = Unsafe.Add(ref lo, j);
                    var b = Unsafe.Add(ref hi, j);
                    Unsafe.Add(ref lo, j) = a + b;
                    Unsafe.Add(ref hi, j) = (a - b) * Unsafe.Add(ref w0, j);
                }
            }
        }
        BitReverse(vals);
        if (!normalize) return;
        var inv = 1.0 / size;
        for (var i = 0; i < size; i++) vals[i] *= inv;
    }

    // Swaps from the precomputed table: no index arithmetic per element.
    private void BitReverse(Span<Complex> vals)
    {
        var swaps = _bitReverseSwaps;
        for (var k = 0; k < swaps.Length; k += 2)
        {
            var i = swaps[k];
            var j = swaps[k + 1];
            (vals[i], vals[j]) = (vals[j], vals[i]);
        }
    }
}
