namespace Serverless.Privacy.Ckks;

public sealed partial class Evaluator
{
    /// <summary>
    /// Every slot receives the sum of all slots: log2(N/2) rotate-and-add steps (keys for the
    /// positive power-of-two steps, or anything they can be composed from).
    /// </summary>
    public void SumSlots(Ciphertext a, Ciphertext destination)
    {
        CheckOperand(a, nameof(a), "SumSlots");
        CheckDestination(destination, "SumSlots");
        if (_galoisKeys is null) ThrowMissingKey("SumSlots", "Galois keys");
        var temp = new Ciphertext(_context);
        a.CopyTo(destination);
        for (var step = 1; step < _context.Slots; step <<= 1)
        {
            Rotate(destination, step, temp);
            AddInPlace(destination, temp);
        }
    }

    public void SumSlotsInPlace(Ciphertext a) => SumSlots(a, a);

    /// <summary>
    /// Σ_j w_j·x_j + bias over ciphertexts at one level and scale, rescaled: the result sits one level
    /// down at the standard scale (<see cref="CkksContext.ScaleAt"/>). This is a dense layer's neuron in one
    /// level: each weight is one RNS residue per prime with its Shoup quotient, products accumulate lazily
    /// in 64 bits and are reduced once per limb when the sum could overflow, no plaintext is encoded and
    /// nothing is allocated per term. Zero weights cost nothing.
    /// </summary>
    /// <exception cref="ArgumentException">No inputs, counts differ, a weight is not finite, or the inputs
    /// are not all relinearized at one level and scale.</exception>
    /// <exception cref="InvalidOperationException">The inputs are at level 0.</exception>
    public void LinearCombination(IReadOnlyList<Ciphertext> inputs, ReadOnlySpan<double> weights, double bias, Ciphertext destination)
    {
        const string op = "LinearCombination";
        ArgumentNullException.ThrowIfNull(inputs);
        CheckDestination(destination, op);
        if (inputs.Count == 0 || inputs.Count != weights.Length)
            throw new ArgumentException($"cannot {op}: {inputs.Count} inputs and {weights.Length} weights; give one weight per input, at least one", nameof(weights));
        if (!double.IsFinite(bias)) throw new ArgumentException($"cannot {op}: the bias must be finite", nameof(bias));
        var first = inputs[0];
        CheckOperand(first, nameof(inputs), op);
        var level = first.Level;
        var scale = first.Scale;
        for (var j = 0; j < inputs.Count; j++)
        {
            var x = inputs[j];
            CheckOperand(x, nameof(inputs), op);
            if (ReferenceEquals(x, destination))
                throw new ArgumentException($"cannot {op}: the destination is also input {j}; use a fresh destination", nameof(destination));
            if (x.Size != 2) throw new ArgumentException($"cannot {op}: input {j} has {x.Size} polynomials; relinearize it first", nameof(inputs));
            CheckLevels(op, level, x.Level);
            CheckScales(op, scale, x.Scale);
            if (!double.IsFinite(weights[j])) throw new ArgumentException($"cannot {op}: weight {j} is not finite", nameof(weights));
        }
        if (level == 0)
            throw new InvalidOperationException($"cannot {op}: the inputs are at level 0, there is no prime left to rescale by");

        // The weights' scale makes the rescale by q_level land on the standard scale of level − 1.
        var constScale = _context.ScaleAt(level - 1) * _context.Moduli[level].Value / scale;
        CheckProductScale(op, scale * constScale);
        var scaled = new double[weights.Length];
        for (var j = 0; j < scaled.Length; j++)
        {
            if (!TryScaleConstant(weights[j], constScale, out scaled[j]))
                throw new ArgumentException($"cannot {op}: weight {j} is too large for the scale", nameof(weights));
        }
        if (!TryScaleConstant(bias * scale, constScale, out var biasScaled))
            throw new ArgumentException($"cannot {op}: the bias is too large for the scale", nameof(bias));
        destination.Reshape(2, level);
        var residues = new ulong[scaled.Length];
        var shoup = new ulong[scaled.Length];
        for (var i = 0; i <= level; i++)
        {
            var m = _context.Moduli[i];
            var q = m.Value;
            for (var j = 0; j < residues.Length; j++)
            {
                residues[j] = Encoder.ScaledToResidue(scaled[j], m);
                shoup[j] = m.ShoupOf(residues[j]);
            }
            // Lazy products are below 2q; this many fit in 64 bits before a reduction is due.
            var perReduction = (int)Math.Min(int.MaxValue, (ulong.MaxValue - q) / (2 * q));
            for (var k = 0; k < 2; k++)
            {
                var acc = destination.Limb(k, i);
                acc.Clear();
                var pending = 0;
                for (var j = 0; j < inputs.Count; j++)
                {
                    if (residues[j] == 0) continue;
                    if (pending == perReduction)
                    {
                        ReduceInPlace(acc, m);
                        pending = 1;
                    }
                    MulAccumulate(inputs[j].Limb(k, i), residues[j], shoup[j], q, acc);
                    pending++;
                }
                ReduceInPlace(acc, m);
            }
            LimbOps.AddScalar(destination.Limb(0, i), Encoder.ScaledToResidue(biasScaled, m), destination.Limb(0, i), q);
        }
        destination.Scale = scale * constScale;
        RescaleInPlace(destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MulAccumulate(ReadOnlySpan<ulong> x, ulong w, ulong wShoup, ulong q, Span<ulong> acc)
    {
        Debug.Assert(x.Length == acc.Length);
        for (var k = 0; k < acc.Length; k++) acc[k] += Modulus.MulShoupLazy(x[k], w, wShoup, q);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReduceInPlace(Span<ulong> acc, Modulus m)
    {
        for (var k = 0; k < acc.Length; k++) acc[k] = m.Reduce(acc[k]);
    }

    /// <summary>
    /// Inner product of two encrypted vectors: multiply, relinearize, rescale, sum of slots. Every
    /// slot of the result holds Σ a_i·b_i (one level consumed).
    /// </summary>
    public void InnerProduct(Ciphertext a, Ciphertext b, Ciphertext destination)
    {
        MultiplyRelinearizeRescale(a, b, destination);
        SumSlots(destination, destination);
    }

    /// <summary>
    /// p(x) = Σ c_i x^i evaluated slot-wise with baby-step giant-step (Paterson–Stockmeyer style)
    /// and minimal depth ceil(log2(degree + 1)): baby powers x^1..x^(k−1), giant powers x^k,
    /// x^2k, x^4k, ...; each constant is folded into the lowest-depth factor so no extra level is
    /// spent on coefficients. The input must be at its level's standard scale (fresh, or after
    /// Rescale/ModSwitchTo); the result is at the standard scale of its level.
    /// </summary>
    /// <exception cref="InvalidOperationException">The ciphertext has fewer levels than the degree needs.</exception>
    public void EvaluatePolynomial(Ciphertext x, ReadOnlySpan<double> coefficients, Ciphertext destination)
    {
        const string op = "EvaluatePolynomial";
        CheckOperand(x, nameof(x), op);
        CheckDestination(destination, op);
        if (_relinKey is null) ThrowMissingKey(op, "relinearization key");
        if (x.Size != 2) throw new ArgumentException($"cannot {op}: the input has size {x.Size}; call Relinearize first");
        if (Math.Abs(x.Scale / _context.ScaleAt(x.Level) - 1) > 1e-9)
            throw new ArgumentException($"cannot {op}: the input's scale is not the standard scale of level {x.Level}; call Rescale after multiplications (or ModSwitchTo)");
        var degree = coefficients.Length - 1;
        while (degree > 0 && coefficients[degree] == 0) degree--;
        foreach (var c in coefficients)
            if (!double.IsFinite(c)) throw new ArgumentException($"cannot {op}: coefficients must be finite", nameof(coefficients));
        if (degree < 1)
        {
            // A constant still needs a ciphertext: 0·x + c0.
            MultiplyScalar(x, 0, destination);
            Rescale(destination, destination);
            AddScalar(destination, coefficients.Length > 0 ? coefficients[0] : 0, destination);
            return;
        }
        var depth = CeilLog2(degree + 1);
        if (x.Level < depth)
            throw new InvalidOperationException(
                $"cannot {op}: degree {degree} needs {depth} levels but the ciphertext is at level {x.Level} (depth exhausted); " +
                "use parameters with a longer modulus chain or a lower-degree polynomial");
        var logBound = CeilLog2(degree + 1);
        var logBaby = Math.Max(1, (logBound + 1) / 2);
        var baby = 1 << logBaby;
        var powers = new PowerCache(this, x);
        var coeffs = coefficients[..(degree + 1)].ToArray();
        var result = EvaluateRecursive(coeffs, logBound, baby, powers);
        result!.CopyTo(destination);
    }

    public void EvaluatePolynomialInPlace(Ciphertext x, ReadOnlySpan<double> coefficients) => EvaluatePolynomial(x, coefficients, x);

    private Ciphertext? EvaluateRecursive(double[] coeffs, int logBound, int baby, PowerCache powers)
    {
        if (Array.TrueForAll(coeffs, c => c == 0)) return null;
        if ((1 << logBound) <= baby) return EvaluateBaby(coeffs, powers);
        var half = 1 << (logBound - 1);
        var lowCoeffs = coeffs.AsSpan(0, Math.Min(half, coeffs.Length)).ToArray();
        var highCoeffs = coeffs.Length > half ? coeffs.AsSpan(half).ToArray() : [];
        var low = EvaluateRecursive(lowCoeffs, logBound - 1, baby, powers);
        var high = highCoeffs.Length > 0 ? EvaluateRecursive(highCoeffs, logBound - 1, baby, powers) : null;
        if (high is null) return low;
        var giant = powers.Get(half);
        var level = Math.Min(high.Level, giant.Level);
        var g = giant;
        if (giant.Level != level) { g = new Ciphertext(_context); ModSwitchTo(giant, level, g); }
        if (high.Level != level) ModSwitchTo(high, level, high);
        MultiplyRelinearizeRescale(high, g, high);
        if (low is not null)
        {
            AlignForAdd(low, high);
            AddInPlace(high, low);
        }
        return high;
    }

    private Ciphertext? EvaluateBaby(double[] coeffs, PowerCache powers)
    {
        Ciphertext? sum = null;
        for (var i = 1; i < coeffs.Length; i++)
        {
            if (coeffs[i] == 0) continue;
            var term = ScaledPower(coeffs[i], i, powers);
            if (sum is null) sum = term;
            else
            {
                AlignForAdd(sum, term);
                AlignForAdd(term, sum);
                AddInPlace(sum, term);
            }
        }
        if (sum is null)
        {
            sum = new Ciphertext(_context);
            MultiplyScalar(powers.Get(1), 0, sum);
            Rescale(sum, sum);
        }
        if (coeffs[0] != 0) AddScalar(sum, coeffs[0], sum);
        return sum;
    }

    /// <summary>c·x^i with depth ceil(log2(i+1)): the constant rides on the lowest factor.</summary>
    private Ciphertext ScaledPower(double c, int i, PowerCache powers)
    {
        if (i == 1)
        {
            var t = new Ciphertext(_context);
            MultiplyScalar(powers.Get(1), c, t);
            Rescale(t, t);
            return t;
        }
        int low, high;
        if (BitOperations.IsPow2(i)) { low = i / 2; high = i / 2; }
        else { high = 1 << (31 - BitOperations.LeadingZeroCount((uint)i)); low = i - high; }
        var partial = ScaledPower(c, low, powers);
        var factor = powers.Get(high);
        var level = Math.Min(partial.Level, factor.Level);
        if (partial.Level != level) ModSwitchTo(partial, level, partial);
        var f = factor;
        if (factor.Level != level) { f = new Ciphertext(_context); ModSwitchTo(factor, level, f); }
        MultiplyRelinearizeRescale(partial, f, partial);
        return partial;
    }

    /// <summary>Brings <paramref name="a"/> down to <paramref name="b"/>'s level if it is higher.</summary>
    private void AlignForAdd(Ciphertext a, Ciphertext b)
    {
        if (a.Level > b.Level) ModSwitchTo(a, b.Level, a);
    }

    private static int CeilLog2(int v) => v <= 1 ? 0 : 32 - BitOperations.LeadingZeroCount((uint)(v - 1));

    /// <summary>x^i at minimal depth, computed on demand: x^(2^a) by squaring, others as x^(2^a)·x^(i−2^a).</summary>
    private sealed class PowerCache(Evaluator evaluator, Ciphertext x)
    {
        private readonly Dictionary<int, Ciphertext> _powers = new() { [1] = x };

        public Ciphertext Get(int i)
        {
            if (_powers.TryGetValue(i, out var p)) return p;
            int low, high;
            if (BitOperations.IsPow2(i)) { low = i / 2; high = i / 2; }
            else { high = 1 << (31 - BitOperations.LeadingZeroCount((uint)i)); low = i - high; }
            var a = Get(high);
            var b = Get(low);
            var level = Math.Min(a.Level, b.Level);
            var ctx = evaluator._context;
            var left = a;
            if (a.Level != level) { left = new Ciphertext(ctx); evaluator.ModSwitchTo(a, level, left); }
            var right = b;
            if (b.Level != level) { right = new Ciphertext(ctx); evaluator.ModSwitchTo(b, level, right); }
            var result = new Ciphertext(ctx);
            evaluator.MultiplyRelinearizeRescale(left, right, result);
            _powers[i] = result;
            return result;
        }
    }

    /// <summary>
    /// y = M·v for a d×d plaintext matrix and an encrypted vector, by the diagonal method
    /// (Halevi–Shoup) with baby-step giant-step: y = Σ_j rot(Σ_i rot(diag_(jg+i), −jg) ⊙ rot(v, i), jg).
    /// d must divide N/2, and the vector must be replicated with period d across all slots
    /// (slot t holds v[t mod d]); the result is replicated the same way. One level consumed;
    /// needs rotations by 1..g−1 and multiples of g (g ≈ sqrt(d)), or power-of-two keys.
    /// </summary>
    public void MultiplyMatrix(double[,] matrix, Ciphertext vector, Ciphertext destination)
    {
        const string op = "MultiplyMatrix";
        ArgumentNullException.ThrowIfNull(matrix);
        CheckOperand(vector, nameof(vector), op);
        CheckDestination(destination, op);
        if (_galoisKeys is null) ThrowMissingKey(op, "Galois keys");
        var d = matrix.GetLength(0);
        var slots = _context.Slots;
        if (d != matrix.GetLength(1)) throw new ArgumentException($"cannot {op}: the matrix must be square, got {d}x{matrix.GetLength(1)}", nameof(matrix));
        if (d < 1 || slots % d != 0) throw new ArgumentException($"cannot {op}: the dimension {d} must divide the slot count {slots}", nameof(matrix));
        if (vector.Level == 0)
            throw new InvalidOperationException($"cannot {op}: the vector is at level 0 (depth exhausted); the product needs one level");
        if (vector.Size != 2) throw new ArgumentException($"cannot {op}: the vector has size {vector.Size}; call Relinearize first");
        var g = 1 << Math.Max(0, CeilLog2((int)Math.Ceiling(Math.Sqrt(d))));
        var h = (d + g - 1) / g;
        var level = vector.Level;
        var encoder = new Encoder(_context);
        var babies = new Ciphertext[g];
        babies[0] = vector;
        for (var i = 1; i < g && i < d; i++)
        {
            babies[i] = new Ciphertext(_context);
            Rotate(vector, i, babies[i]);
        }
        var diagonal = new double[slots];
        var pt = new Plaintext(_context);
        var product = new Ciphertext(_context);
        Ciphertext? total = null;
        for (var j = 0; j < h; j++)
        {
            Ciphertext? inner = null;
            for (var i = 0; i < g; i++)
            {
                var idx = j * g + i;
                if (idx >= d) break;
                var nonZero = false;
                for (var t = 0; t < slots; t++)
                {
                    // rot(diag_idx, −jg)[t] = diag_idx[t − jg], diag_idx[r] = M[r mod d][(r + idx) mod d].
                    var r = ((t - j * g) % d + d) % d;
                    var value = matrix[r, (r + idx) % d];
                    diagonal[t] = value;
                    nonZero |= value != 0;
                }
                if (!nonZero) continue;
                if (!double.IsFinite(diagonal.Max()) || !double.IsFinite(diagonal.Min()))
                    throw new ArgumentException($"cannot {op}: matrix entries must be finite", nameof(matrix));
                encoder.Encode(diagonal, _context.ScaleAt(level), level, pt);
                if (inner is null)
                {
                    inner = new Ciphertext(_context);
                    MultiplyPlain(babies[i], pt, inner);
                }
                else
                {
                    MultiplyPlain(babies[i], pt, product);
                    AddInPlace(inner, product);
                }
            }
            if (inner is null) continue;
            if (j > 0) Rotate(inner, j * g, inner);
            if (total is null) total = inner;
            else AddInPlace(total, inner);
        }
        if (total is null)
        {
            total = new Ciphertext(_context);
            MultiplyScalar(vector, 0, total);
        }
        Rescale(total, destination);
    }
}
