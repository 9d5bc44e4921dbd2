using System.Collections.Concurrent;

namespace Serverless.Privacy.Ckks;

/// <summary>
/// Everything precomputed from <see cref="CkksParameters"/>: NTT tables per prime, RNS constants
/// for rescaling and key switching, the scale ladder, Galois permutations and the encoder's FFT
/// tables. Expensive to build, immutable and thread-safe afterwards: build one per parameter set
/// and share it.
/// </summary>
public sealed class CkksContext
{
    private readonly ConcurrentDictionary<ulong, int[]> _galoisPermutations = new();
    private readonly ConcurrentDictionary<int, CrtConstants> _crt = new();
    private readonly double[] _levelScales;

    /// <summary>Builds the tables for <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The parameter set.</param>
    /// <param name="parallelLimbs">Process RNS limbs in parallel for N ≥ 8192 (null: when more than one core).</param>
    public CkksContext(CkksParameters parameters, bool? parallelLimbs = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Parameters = parameters;
        N = parameters.N;
        Slots = N / 2;
        LogN = BitOperations.Log2((uint)N);
        MaxLevel = parameters.MaxLevel;
        var count = MaxLevel + 2;
        Moduli = new Modulus[count];
        Ntt = new NttTables[count];
        for (var i = 0; i <= MaxLevel; i++) Moduli[i] = new Modulus(parameters.Primes[i]);
        Moduli[count - 1] = new Modulus(parameters.SpecialPrime);
        Parallel.For(0, count, i => Ntt[i] = new NttTables(Moduli[i], N));
        SpecialIndex = count - 1;

        var p = Moduli[SpecialIndex];
        PModQ = new ulong[MaxLevel + 1];
        PInvModQ = new ulong[MaxLevel + 1];
        PInvModQShoup = new ulong[MaxLevel + 1];
        for (var i = 0; i <= MaxLevel; i++)
        {
            PModQ[i] = Moduli[i].Reduce(p.Value);
            PInvModQ[i] = Moduli[i].Inverse(PModQ[i]);
            PInvModQShoup[i] = Moduli[i].ShoupOf(PInvModQ[i]);
        }
        LastInvModQ = new ulong[MaxLevel + 1][];
        LastInvModQShoup = new ulong[MaxLevel + 1][];
        for (var l = 1; l <= MaxLevel; l++)
        {
            LastInvModQ[l] = new ulong[l];
            LastInvModQShoup[l] = new ulong[l];
            for (var i = 0; i < l; i++)
            {
                LastInvModQ[l][i] = Moduli[i].Inverse(Moduli[i].Reduce(Moduli[l].Value));
                LastInvModQShoup[l][i] = Moduli[i].ShoupOf(LastInvModQ[l][i]);
            }
        }
        LastInvModQ[0] = [];
        LastInvModQShoup[0] = [];

        // Scale ladder: fresh ciphertexts sit at Δ on level L; multiplying two ciphertexts of
        // level l at scale s_l and rescaling by q_l lands exactly on s_{l-1} = s_l^2 / q_l.
        _levelScales = new double[MaxLevel + 1];
        _levelScales[MaxLevel] = parameters.Scale;
        for (var l = MaxLevel; l >= 1; l--)
            _levelScales[l - 1] = _levelScales[l] * _levelScales[l] / Moduli[l].Value;

        RotationGroup = new int[Slots];
        var twoN = 2 * N;
        long g = 1;
        for (var j = 0; j < Slots; j++)
        {
            RotationGroup[j] = (int)g;
            g = g * 5 % twoN;
        }
        RootsOfUnity = new Complex[twoN + 1];
        for (var j = 0; j <= twoN; j++)
        {
            var angle = 2 * Math.PI * j / twoN;
            RootsOfUnity[j] = new Complex(Math.Cos(angle), Math.Sin(angle));
        }
        // Special-FFT twiddles per layer (len = 2, 4, ..., N/2): ζ^(5^j mod 4·len · 2N/(4·len)).
        FftTwiddles = new Complex[LogN][];
        for (var len = 2; len <= Slots; len <<= 1)
        {
            var lenq = len << 2;
            var gap = twoN / lenq;
            var layer = new Complex[len >> 1];
            for (var j = 0; j < layer.Length; j++) layer[j] = RootsOfUnity[RotationGroup[j] % lenq * gap];
            FftTwiddles[BitOperations.Log2((uint)len)] = layer;
        }
        ParallelLimbs = parallelLimbs ?? Environment.ProcessorCount > 1;
    }

    internal Complex[][] FftTwiddles { get; }

    public CkksParameters Parameters { get; }

    public int N { get; }

    public int Slots { get; }

    public int MaxLevel { get; }

    internal int LogN { get; }

    internal Modulus[] Moduli { get; }

    internal NttTables[] Ntt { get; }

    /// <summary>Index of the special prime P in <see cref="Moduli"/> (L + 1).</summary>
    internal int SpecialIndex { get; }

    internal ulong[] PModQ { get; }

    internal ulong[] PInvModQ { get; }

    internal ulong[] PInvModQShoup { get; }

    /// <summary>[l][i] = q_l^-1 mod q_i for i &lt; l (rescaling from level l).</summary>
    internal ulong[][] LastInvModQ { get; }

    internal ulong[][] LastInvModQShoup { get; }

    internal int[] RotationGroup { get; }

    internal Complex[] RootsOfUnity { get; }

    internal bool ParallelLimbs { get; }

    /// <summary>
    /// The standard scale of level <paramref name="level"/>: Δ at the top, s_{l-1} = s_l² / q_l
    /// below. Results of multiply + rescale of standard operands are standard; encode plaintexts
    /// for level l at this scale.
    /// </summary>
    public double ScaleAt(int level)
    {
        if ((uint)level > (uint)MaxLevel) throw new ArgumentOutOfRangeException(nameof(level), level, $"levels run from 0 to {MaxLevel}");
        return _levelScales[level];
    }

    /// <summary>Galois element for a left rotation by <paramref name="step"/> slots: 5^step mod 2N.</summary>
    public ulong GaloisElementForStep(int step)
    {
        var k = ((step % Slots) + Slots) % Slots;
        ulong g = 1;
        var twoN = (ulong)(2 * N);
        for (var i = 0; i < k; i++) g = g * 5 % twoN;
        return g;
    }

    /// <summary>Galois element of complex conjugation: 2N − 1.</summary>
    public ulong ConjugationGaloisElement => (ulong)(2 * N - 1);

    /// <summary>
    /// out[i] = in[perm[i]] applies X → X^g to a polynomial in NTT form: slot i holds the value at
    /// ψ^(2·bitrev(i)+1), and σ_g(a)(ψ^e) = a(ψ^(e·g)).
    /// </summary>
    internal int[] GaloisPermutation(ulong galois) => _galoisPermutations.GetOrAdd(galois, g =>
    {
        var perm = new int[N];
        var twoN = (ulong)(2 * N);
        for (var i = 0; i < N; i++)
        {
            var e = (ulong)(2 * NttTables.BitReverse(i, LogN) + 1);
            var target = e * g % twoN;
            perm[i] = NttTables.BitReverse((int)((target - 1) / 2), LogN);
        }
        return perm;
    });

    /// <summary>Runs <paramref name="body"/> for every limb, in parallel where it pays.</summary>
    internal void ForLimbs(int count, Action<int> body)
    {
        if (ParallelLimbs && count > 1 && N >= 8192)
            Parallel.For(0, count, body);
        else
            for (var i = 0; i < count; i++) body(i);
    }

    /// <summary>Element-wise bodies without transforms: threads cost more than they save at these sizes.</summary>
    internal static void ForLimbsLight(int count, Action<int> body)
    {
        for (var i = 0; i < count; i++) body(i);
    }

    /// <summary><paramref name="context"/>, once it is not null and <paramref name="keyContext"/> (a key's) is that very context.</summary>
    internal static CkksContext ForKey(CkksContext context, CkksContext? keyContext, string keyName, string paramName)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (keyContext is null) throw new ArgumentNullException(paramName);
        context.RequireOwned(keyContext, keyName, paramName);
        return context;
    }

    /// <summary>
    /// Throws unless <paramref name="owner"/> is this very context. Objects of two contexts never mix, even
    /// with equal parameters: each context has its own tables, and a caller mixing them has a bug.
    /// </summary>
    internal void RequireOwned(CkksContext owner, string what, string paramName)
    {
        if (!ReferenceEquals(owner, this)) throw new ArgumentException(what + " belongs to another context", paramName);
    }

    internal CrtConstants Crt(int level) => _crt.GetOrAdd(level, l => new CrtConstants(Moduli, l));

    internal void CheckLevel(int level, string paramName)
    {
        if ((uint)level > (uint)MaxLevel)
            throw new ArgumentOutOfRangeException(paramName, level, $"levels run from 0 to {MaxLevel}");
    }

    /// <summary>Constants to lift an RNS value at a level back to a centered integer.</summary>
    internal sealed class CrtConstants
    {
        public CrtConstants(Modulus[] moduli, int level)
        {
            Product = BigInteger.One;
            for (var i = 0; i <= level; i++) Product *= moduli[i].Value;
            HalfProduct = Product >> 1;
            Punctured = new BigInteger[level + 1];
            PuncturedInv = new ulong[level + 1];
            for (var i = 0; i <= level; i++)
            {
                Punctured[i] = Product / moduli[i].Value;
                PuncturedInv[i] = moduli[i].Inverse((ulong)(Punctured[i] % moduli[i].Value));
            }
        }

        public BigInteger Product { get; }

        public BigInteger HalfProduct { get; }

        public BigInteger[] Punctured { get; }

        public ulong[] PuncturedInv { get; }
    }
}
