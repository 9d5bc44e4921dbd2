using System.Diagnostics.CodeAnalysis;

namespace Serverless.Privacy.Ckks;

/// <summary>
/// Homomorphic operations on ciphertexts. Every operation comes in two forms: into a destination
/// (which may alias an operand) and in place (the first operand is overwritten).
/// Scale discipline: a fresh ciphertext sits at level L with scale Δ; after Multiply + Rescale
/// of two operands at the standard scale of level l it sits at the standard scale of level l − 1
/// (<see cref="CkksContext.ScaleAt"/>). Operands of Add/Sub must agree on level and scale; the
/// exception says how to fix a mismatch. Thread-safe: an evaluator holds no mutable state.
/// </summary>
public sealed partial class Evaluator
{
    private const double ScaleTolerance = 1e-12;

    private readonly CkksContext _context;
    private readonly RelinearizationKey? _relinKey;
    private readonly GaloisKeys? _galoisKeys;

    /// <param name="context">The parameters' context.</param>
    /// <param name="relinearizationKey">Needed by Relinearize, InnerProduct and polynomial evaluation.</param>
    /// <param name="galoisKeys">Needed by Rotate, Conjugate, SumSlots, InnerProduct and MultiplyMatrix.</param>
    public Evaluator(CkksContext context, RelinearizationKey? relinearizationKey = null, GaloisKeys? galoisKeys = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (relinearizationKey is not null && !ReferenceEquals(relinearizationKey.Context, context))
            throw new ArgumentException("the relinearization key belongs to another context", nameof(relinearizationKey));
        if (galoisKeys is not null && !ReferenceEquals(galoisKeys.Context, context))
            throw new ArgumentException("the Galois keys belong to another context", nameof(galoisKeys));
        _context = context;
        _relinKey = relinearizationKey;
        _galoisKeys = galoisKeys;
    }

    public CkksContext Context => _context;

    // ---------------------------------------------------------------- add / sub / negate

    public void Add(Ciphertext a, Ciphertext b, Ciphertext destination) => AddSub(a, b, destination, subtract: false, "Add");

    public void AddInPlace(Ciphertext a, Ciphertext b) => AddSub(a, b, a, subtract: false, "Add");

    public void Sub(Ciphertext a, Ciphertext b, Ciphertext destination) => AddSub(a, b, destination, subtract: true, "Sub");

    public void SubInPlace(Ciphertext a, Ciphertext b) => AddSub(a, b, a, subtract: true, "Sub");

    public void AddPlain(Ciphertext a, Plaintext b, Ciphertext destination) => AddSubPlain(a, b, destination, subtract: false, "AddPlain");

    public void AddPlainInPlace(Ciphertext a, Plaintext b) => AddSubPlain(a, b, a, subtract: false, "AddPlain");

    public void SubPlain(Ciphertext a, Plaintext b, Ciphertext destination) => AddSubPlain(a, b, destination, subtract: true, "SubPlain");

    public void SubPlainInPlace(Ciphertext a, Plaintext b) => AddSubPlain(a, b, a, subtract: true, "SubPlain");

    /// <summary>Adds <paramref name="value"/> to every slot (encoded at the ciphertext's scale).</summary>
    public void AddScalar(Ciphertext a, double value, Ciphertext destination)
    {
        CheckOperand(a, nameof(a), "AddScalar");
        CheckDestination(destination, "AddScalar");
        var scaled = Math.Round(value * a.Scale);
        if (!double.IsFinite(scaled)) throw new ArgumentException("cannot AddScalar: value times scale is not finite", nameof(value));
        a.CopyTo(destination);
        destination.Seed = null;
        for (var i = 0; i <= a.Level; i++)
        {
            var m = _context.Moduli[i];
            LimbOps.AddScalar(destination.Limb(0, i), Encoder.ScaledToResidue(scaled, m), destination.Limb(0, i), m.Value);
        }
    }

    public void AddScalarInPlace(Ciphertext a, double value) => AddScalar(a, value, a);

    public void SubScalar(Ciphertext a, double value, Ciphertext destination) => AddScalar(a, -value, destination);

    public void SubScalarInPlace(Ciphertext a, double value) => AddScalar(a, -value, a);

    public void Negate(Ciphertext a, Ciphertext destination)
    {
        CheckOperand(a, nameof(a), "Negate");
        CheckDestination(destination, "Negate");
        var level = a.Level;
        var size = a.Size;
        var scale = a.Scale;
        destination.Reshape(size, level);
        for (var k = 0; k < size; k++)
            for (var i = 0; i <= level; i++)
                LimbOps.Negate(a.Limb(k, i), destination.Limb(k, i), _context.Moduli[i].Value);
        destination.Scale = scale;
    }

    public void NegateInPlace(Ciphertext a) => Negate(a, a);

    private void AddSub(Ciphertext a, Ciphertext b, Ciphertext destination, bool subtract, string op)
    {
        CheckOperand(a, nameof(a), op);
        CheckOperand(b, nameof(b), op);
        CheckDestination(destination, op);
        CheckLevels(op, a.Level, b.Level);
        CheckScales(op, a.Scale, b.Scale);
        var level = a.Level;
        var size = Math.Max(a.Size, b.Size);
        var scale = a.Scale;
        // Keep the larger operand's extra polynomial when sizes differ (2 + 3).
        var bigger = a.Size >= b.Size ? a : b;
        if (!ReferenceEquals(destination, a) && !ReferenceEquals(destination, b)) destination.Reshape(size, level);
        else destination.Reshape(size, level);
        CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
        {
            var q = _context.Moduli[i].Value;
            for (var k = 0; k < size; k++)
            {
                if (k < a.Size && k < b.Size)
                {
                    if (subtract) LimbOps.Sub(a.Limb(k, i), b.Limb(k, i), destination.Limb(k, i), q);
                    else LimbOps.Add(a.Limb(k, i), b.Limb(k, i), destination.Limb(k, i), q);
                }
                else if (ReferenceEquals(bigger, a))
                {
                    if (!ReferenceEquals(destination, a)) a.Limb(k, i).CopyTo(destination.Limb(k, i));
                }
                else if (subtract) LimbOps.Negate(b.Limb(k, i), destination.Limb(k, i), q);
                else if (!ReferenceEquals(destination, b)) b.Limb(k, i).CopyTo(destination.Limb(k, i));
            }
        });
        destination.Scale = scale;
    }

    private void AddSubPlain(Ciphertext a, Plaintext b, Ciphertext destination, bool subtract, string op)
    {
        CheckOperand(a, nameof(a), op);
        CheckPlain(b, nameof(b), op);
        CheckDestination(destination, op);
        if (a.Level != b.Level)
            throw new ArgumentException($"cannot {op}: ciphertext at level {a.Level} but plaintext at level {b.Level}; encode the plaintext at level {a.Level}");
        CheckScales(op, a.Scale, b.Scale);
        a.CopyTo(destination);
        destination.Seed = null;
        for (var i = 0; i <= a.Level; i++)
        {
            var q = _context.Moduli[i].Value;
            if (subtract) LimbOps.Sub(destination.Limb(0, i), b.Limb(i), destination.Limb(0, i), q);
            else LimbOps.Add(destination.Limb(0, i), b.Limb(i), destination.Limb(0, i), q);
        }
    }

    // ---------------------------------------------------------------- multiply

    /// <summary>Ciphertext product: 3 polynomials, scale a.Scale·b.Scale. Relinearize and Rescale next.</summary>
    public void Multiply(Ciphertext a, Ciphertext b, Ciphertext destination)
    {
        const string op = "Multiply";
        CheckOperand(a, nameof(a), op);
        CheckOperand(b, nameof(b), op);
        CheckDestination(destination, op);
        if (a.Size != 2 || b.Size != 2)
            throw new ArgumentException($"cannot {op}: operands have sizes {a.Size} and {b.Size}; call Relinearize first");
        CheckLevels(op, a.Level, b.Level);
        CheckProductScale(op, a.Scale * b.Scale);
        var level = a.Level;
        var scale = a.Scale * b.Scale;
        destination.Reshape(3, level);
        var n = _context.N;
        CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
        {
            var m = _context.Moduli[i];
            var q = m.Value;
            var a0 = a.Limb(0, i);
            var a1 = a.Limb(1, i);
            var b0 = b.Limb(0, i);
            var b1 = b.Limb(1, i);
            var d0 = destination.Limb(0, i);
            var d1 = destination.Limb(1, i);
            var d2 = destination.Limb(2, i);
            for (var k = 0; k < n; k++)
            {
                ulong x0 = a0[k], x1 = a1[k], y0 = b0[k], y1 = b1[k];
                d0[k] = m.Mul(x0, y0);
                var s = m.Mul(x0, y1) + m.Mul(x1, y0);
                d1[k] = Modulus.SubIfGe(s, q);
                d2[k] = m.Mul(x1, y1);
            }
        });
        destination.Scale = scale;
    }

    public void MultiplyInPlace(Ciphertext a, Ciphertext b) => Multiply(a, b, a);

    public void Square(Ciphertext a, Ciphertext destination) => Multiply(a, a, destination);

    public void SquareInPlace(Ciphertext a) => Multiply(a, a, a);

    /// <summary>Multiply, relinearize and rescale in one call.</summary>
    public void MultiplyRelinearizeRescale(Ciphertext a, Ciphertext b, Ciphertext destination)
    {
        Multiply(a, b, destination);
        Relinearize(destination, destination);
        Rescale(destination, destination);
    }

    /// <summary>Ciphertext times plaintext (same level); scale a.Scale·b.Scale.</summary>
    public void MultiplyPlain(Ciphertext a, Plaintext b, Ciphertext destination)
    {
        const string op = "MultiplyPlain";
        CheckOperand(a, nameof(a), op);
        CheckPlain(b, nameof(b), op);
        CheckDestination(destination, op);
        if (a.Level != b.Level)
            throw new ArgumentException($"cannot {op}: ciphertext at level {a.Level} but plaintext at level {b.Level}; encode the plaintext at level {a.Level}");
        CheckProductScale(op, a.Scale * b.Scale);
        var level = a.Level;
        var size = a.Size;
        var scale = a.Scale * b.Scale;
        destination.Reshape(size, level);
        CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
        {
            var m = _context.Moduli[i];
            for (var k = 0; k < size; k++) LimbOps.Mul(a.Limb(k, i), b.Limb(i), destination.Limb(k, i), m);
        });
        destination.Scale = scale;
    }

    public void MultiplyPlainInPlace(Ciphertext a, Plaintext b) => MultiplyPlain(a, b, a);

    /// <summary>
    /// Multiplies every slot by a real constant, encoded at the scale that makes the following
    /// <see cref="Rescale(Ciphertext, Ciphertext)"/> land exactly on the standard scale of the next level.
    /// </summary>
    public void MultiplyScalar(Ciphertext a, double value, Ciphertext destination)
    {
        const string op = "MultiplyScalar";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        if (!double.IsFinite(value)) throw new ArgumentException($"cannot {op}: value must be finite", nameof(value));
        var level = a.Level;
        var constantScale = _context.Parameters.Scale;
        if (level > 0)
        {
            var exact = _context.ScaleAt(level - 1) * _context.Moduli[level].Value / a.Scale;
            if (exact >= 1 << 20) constantScale = exact;
        }
        if (!TryScaleConstant(value, constantScale, out var scaled))
            throw new ArgumentException($"cannot {op}: value {value} is too large for the scale", nameof(value));
        CheckProductScale(op, a.Scale * constantScale);
        var newScale = a.Scale * constantScale;
        var size = a.Size;
        destination.Reshape(size, level);
        for (var i = 0; i <= level; i++)
        {
            var m = _context.Moduli[i];
            var w = Encoder.ScaledToResidue(scaled, m);
            for (var k = 0; k < size; k++) LimbOps.MulScalar(a.Limb(k, i), w, destination.Limb(k, i), m);
        }
        destination.Scale = newScale;
    }

    public void MultiplyScalarInPlace(Ciphertext a, double value) => MultiplyScalar(a, value, a);

    // ---------------------------------------------------------------- rescale / mod switch

    /// <summary>Divides by the last prime q_level (rounding) and drops it: level − 1, scale / q_level.</summary>
    /// <exception cref="InvalidOperationException">The ciphertext is at level 0: the circuit is deeper than the modulus chain.</exception>
    public void Rescale(Ciphertext a, Ciphertext destination)
    {
        const string op = "Rescale";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        if (a.Level == 0)
            throw new InvalidOperationException(
                "cannot Rescale: the ciphertext is at level 0, the modulus chain is exhausted (multiplicative depth used up); " +
                "use parameters with more primes in the chain, or a shallower circuit");
        var level = a.Level;
        var size = a.Size;
        var newScale = a.Scale / _context.Moduli[level].Value;
        var standard = _context.ScaleAt(level - 1);
        if (Math.Abs(newScale / standard - 1) < ScaleTolerance) newScale = standard;
        if (!ReferenceEquals(a, destination)) a.CopyTo(destination);
        for (var k = 0; k < size; k++) DivideByLastPrime(destination, k, level);
        destination.DropTo(level - 1);
        destination.Scale = newScale;
    }

    public void RescaleInPlace(Ciphertext a) => Rescale(a, a);

    /// <summary>
    /// Moves a ciphertext down to <paramref name="level"/> at that level's standard scale, so it
    /// can be combined with results of multiplications there. Implemented as dropping primes to
    /// level + 1, then multiplying by an integer constant ≈ q_(level+1) chosen so the rescale lands
    /// on <see cref="CkksContext.ScaleAt"/>(level) (relative scale error below 2^-40).
    /// </summary>
    public void ModSwitchTo(Ciphertext a, int level, Ciphertext destination)
    {
        const string op = "ModSwitchTo";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        _context.CheckLevel(level, nameof(level));
        if (level > a.Level)
            throw new ArgumentException($"cannot {op}: the ciphertext is at level {a.Level}, below the requested level {level}; levels only go down");
        if (level == a.Level)
        {
            a.CopyTo(destination);
            return;
        }
        var next = level + 1;
        var target = _context.ScaleAt(level);
        var q = (double)_context.Moduli[next].Value;
        var constant = Math.Round(target * q / a.Scale);
        if (constant < 1 << 20 || constant >= Math.Pow(2, 61))
            throw new ArgumentException(
                $"cannot {op}: the ciphertext's scale 2^{Math.Log2(a.Scale):0.##} is far from the standard scale; call Rescale after multiplications before switching levels");
        a.CopyTo(destination);
        destination.DropTo(next);
        var size = destination.Size;
        for (var i = 0; i <= next; i++)
        {
            var m = _context.Moduli[i];
            var w = Encoder.ScaledToResidue(constant, m);
            for (var k = 0; k < size; k++) LimbOps.MulScalar(destination.Limb(k, i), w, destination.Limb(k, i), m);
        }
        for (var k = 0; k < size; k++) DivideByLastPrime(destination, k, next);
        destination.DropTo(level);
        destination.Scale = target;
    }

    public void ModSwitchToInPlace(Ciphertext a, int level) => ModSwitchTo(a, level, a);

    private void DivideByLastPrime(Ciphertext ct, int poly, int level)
    {
        var n = _context.N;
        var scratch = ScratchPool.Rent(n);
        try
        {
            var last = scratch.AsSpan(0, n);
            ct.Limb(poly, level).CopyTo(last);
            _context.Ntt[level].Inverse(last);
            var ql = _context.Moduli[level].Value;
            var half = ql >> 1;
            var invs = _context.LastInvModQ[level];
            var invsShoup = _context.LastInvModQShoup[level];
            _context.ForLimbs(level, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                var m = _context.Moduli[i];
                var q = m.Value;
                var temp = ScratchPool.Rent(n);
                try
                {
                    var t = temp.AsSpan(0, n);
                    var src = scratch.AsSpan(0, n);
                    var qlModQi = m.Reduce(ql);
                    // Centered lift of the last residue, so the division rounds instead of flooring.
                    for (var k = 0; k < n; k++)
                    {
                        var v = src[k];
                        t[k] = v > half ? m.Sub(m.Reduce(v), qlModQi) : m.Reduce(v);
                    }
                    _context.Ntt[i].Forward(t);
                    var dst = ct.Limb(poly, i);
                    var w = invs[i];
                    var wp = invsShoup[i];
                    for (var k = 0; k < n; k++)
                    {
                        var x = dst[k] + q - t[k];
                        dst[k] = Modulus.MulShoup(x, w, wp, q);
                    }
                }
                finally { ScratchPool.Return(temp); }
            });
        }
        finally { ScratchPool.Return(scratch); }
    }

    // ---------------------------------------------------------------- checks

    private void CheckOperand(Ciphertext a, string name, string op)
    {
        ArgumentNullException.ThrowIfNull(a, name);
        if (!ReferenceEquals(a.Context, _context))
            throw new ArgumentException($"cannot {op}: the ciphertext belongs to another context (parameter set); use one CkksContext per parameter set", name);
    }

    private void CheckPlain(Plaintext a, string name, string op)
    {
        ArgumentNullException.ThrowIfNull(a, name);
        if (!ReferenceEquals(a.Context, _context))
            throw new ArgumentException($"cannot {op}: the plaintext belongs to another context (parameter set)", name);
    }

    private void CheckDestination(Ciphertext destination, string op) => CheckOperand(destination, nameof(destination), op);

    private static void CheckLevels(string op, int levelA, int levelB)
    {
        if (levelA != levelB)
        {
            var low = Math.Min(levelA, levelB);
            var which = levelA > levelB ? "the first operand" : "the second operand";
            throw new ArgumentException($"cannot {op}: operands at levels {levelA} and {levelB}; call ModSwitchTo({which}, {low}) first");
        }
    }

    /// <summary>
    /// A constant times the scale it is encoded at, rounded. It must stay finite and below 2^100, where
    /// <see cref="Encoder.ScaledToResidue"/> still reduces it exactly enough for the scale's precision.
    /// </summary>
    private static bool TryScaleConstant(double value, double scale, out double scaled)
    {
        scaled = Math.Round(value * scale);
        return double.IsFinite(scaled) && Math.Abs(scaled) < Math.Pow(2, 100);
    }

    private static void CheckScales(string op, double a, double b)
    {
        if (Math.Abs(a / b - 1) > ScaleTolerance)
            throw new ArgumentException(
                $"cannot {op}: operand scales 2^{Math.Log2(a):0.######} and 2^{Math.Log2(b):0.######} differ; " +
                "Rescale after every multiplication, move levels with ModSwitchTo, and encode plaintexts at the ciphertext's Scale");
    }

    private void CheckProductScale(string op, double scale)
    {
        var bits = Math.Log2(scale);
        var available = 0.0;
        foreach (var m in _context.Moduli.AsSpan(0, _context.MaxLevel + 1)) available += Math.Log2(m.Value);
        if (bits >= available - 1)
            throw new ArgumentException($"cannot {op}: the product's scale 2^{bits:0.#} would exceed the modulus; Rescale the operands first");
    }

    [DoesNotReturn]
    private static void ThrowMissingKey(string op, string what) =>
        throw new InvalidOperationException($"cannot {op}: this evaluator has no {what}; pass it to the Evaluator constructor");
}
