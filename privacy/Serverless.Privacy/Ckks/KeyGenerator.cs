namespace Serverless.Privacy.Ckks;

/// <summary>
/// Generates a ternary secret key and the keys derived from it. All secret randomness (the
/// secret, errors) comes from <see cref="System.Security.Cryptography.RandomNumberGenerator"/>;
/// the public uniform polynomials expand from a fresh random seed.
/// </summary>
public sealed class KeyGenerator
{
    internal const uint PublicKeyDomain = 1;

    private readonly CkksContext _context;

    /// <summary>Creates a generator with a fresh secret key.</summary>
    public KeyGenerator(CkksContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        _context = context;
        var n = context.N;
        var limbs = context.MaxLevel + 2;
        var data = new ulong[limbs * n];
        var ternary = new sbyte[n];
        Sampling.Ternary(ternary);
        for (var i = 0; i < limbs; i++)
        {
            var limb = data.AsSpan(i * n, n);
            Sampling.SmallToLimb(ternary, limb, context.Moduli[i].Value);
            context.Ntt[i].Forward(limb);
        }
        Array.Clear(ternary);
        SecretKey = new SecretKey(context, data);
    }

    /// <summary>Creates a generator for an existing secret key.</summary>
    public KeyGenerator(CkksContext context, SecretKey secretKey)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(secretKey);
        if (!ReferenceEquals(secretKey.Context, context) && !secretKey.Context.Parameters.Hash.Span.SequenceEqual(context.Parameters.Hash.Span))
            throw new ArgumentException("the secret key belongs to other parameters", nameof(secretKey));
        _context = context;
        SecretKey = secretKey;
    }

    public SecretKey SecretKey { get; }

    /// <summary>A public key (b, a) = (−a·s + e, a) over q_0 ... q_L.</summary>
    public PublicKey CreatePublicKey()
    {
        var ctx = _context;
        var n = ctx.N;
        var limbs = ctx.MaxLevel + 1;
        var seed = Sampling.NewSeed();
        var a = new ulong[limbs * n];
        var b = new ulong[limbs * n];
        var error = new sbyte[n];
        Sampling.Error(error);
        ctx.ForLimbs(limbs, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
        {
            var m = ctx.Moduli[i];
            var ai = a.AsSpan(i * n, n);
            var bi = b.AsSpan(i * n, n);
            UniformExpander.Expand(seed, PublicKeyDomain, i, m.Value, ai);
            Sampling.SmallToLimb(error, bi, m.Value);
            ctx.Ntt[i].Forward(bi);
            var s = SecretKey.Limb(i);
            for (var k = 0; k < n; k++) bi[k] = m.Sub(bi[k], m.Mul(ai[k], s[k]));
        });
        Array.Clear(error);
        return new PublicKey(ctx, b, a, seed);
    }

    /// <summary>The relinearization key (switches s² to s).</summary>
    public RelinearizationKey CreateRelinearizationKey()
    {
        var ctx = _context;
        var n = ctx.N;
        var sSquared = new ulong[(ctx.MaxLevel + 2) * n];
        for (var i = 0; i <= ctx.SpecialIndex; i++)
            LimbOps.Mul(SecretKey.Limb(i), SecretKey.Limb(i), sSquared.AsSpan(i * n, n), ctx.Moduli[i]);
        var key = CreateSwitchingKey(sSquared);
        Array.Clear(sSquared);
        return new RelinearizationKey(ctx, key);
    }

    /// <summary>
    /// Galois keys for left rotations by each of <paramref name="steps"/> (negative = right) and,
    /// optionally, conjugation. Each key holds (L+1)·2·(L+2)·N words: generate only the steps a
    /// circuit needs.
    /// </summary>
    public GaloisKeys CreateGaloisKeys(IEnumerable<int> steps, bool includeConjugation = false)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var elements = new HashSet<ulong>();
        foreach (var step in steps)
        {
            if (step % _context.Slots == 0) continue;
            elements.Add(_context.GaloisElementForStep(step));
        }
        if (includeConjugation) elements.Add(_context.ConjugationGaloisElement);
        var keys = new Dictionary<ulong, KeySwitchKey>();
        foreach (var g in elements) keys[g] = CreateGaloisKey(g);
        return new GaloisKeys(_context, keys);
    }

    /// <summary>Keys for every power-of-two step in both directions, and conjugation: any rotation can be composed from them.</summary>
    public GaloisKeys CreateGaloisKeys()
    {
        var steps = new List<int>();
        for (var s = 1; s < _context.Slots; s <<= 1) { steps.Add(s); steps.Add(-s); }
        return CreateGaloisKeys(steps, includeConjugation: true);
    }

    private KeySwitchKey CreateGaloisKey(ulong galois)
    {
        var ctx = _context;
        var n = ctx.N;
        var perm = ctx.GaloisPermutation(galois);
        var permuted = new ulong[(ctx.MaxLevel + 2) * n];
        for (var i = 0; i <= ctx.SpecialIndex; i++)
            LimbOps.Permute(SecretKey.Limb(i), perm, permuted.AsSpan(i * n, n));
        var key = CreateSwitchingKey(permuted);
        Array.Clear(permuted);
        return key;
    }

    /// <summary>Key switching from <paramref name="from"/> (NTT form over all L+2 limbs) to s.</summary>
    private KeySwitchKey CreateSwitchingKey(ulong[] from)
    {
        var ctx = _context;
        var n = ctx.N;
        var digits = ctx.MaxLevel + 1;
        var limbs = ctx.MaxLevel + 2;
        var seed = Sampling.NewSeed();
        var b = new ulong[digits][];
        var a = new ulong[digits][];
        for (var j = 0; j < digits; j++)
        {
            b[j] = new ulong[limbs * n];
            a[j] = new ulong[limbs * n];
            var error = new sbyte[n];
            Sampling.Error(error);
            var bj = b[j];
            var aj = a[j];
            var digit = j;
            ctx.ForLimbs(limbs, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                var m = ctx.Moduli[i];
                var ai = aj.AsSpan(i * n, n);
                var bi = bj.AsSpan(i * n, n);
                UniformExpander.Expand(seed, KeySwitchKey.Domain(digit), i, m.Value, ai);
                Sampling.SmallToLimb(error, bi, m.Value);
                ctx.Ntt[i].Forward(bi);
                var s = SecretKey.Limb(i);
                for (var k = 0; k < n; k++) bi[k] = m.Sub(bi[k], m.Mul(ai[k], s[k]));
                if (i == digit)
                {
                    // + P·s' in the digit's own limb only: P·g_j ≡ P mod q_j, 0 mod q_i (i ≠ j), 0 mod P.
                    var fromLimb = from.AsSpan(i * n, n);
                    var pj = ctx.PModQ[i];
                    var pjShoup = m.ShoupOf(pj);
                    for (var k = 0; k < n; k++) bi[k] = m.Add(bi[k], Modulus.MulShoup(fromLimb[k], pj, pjShoup, m.Value));
                }
            });
            Array.Clear(error);
        }
        return new KeySwitchKey(b, a, seed);
    }
}
