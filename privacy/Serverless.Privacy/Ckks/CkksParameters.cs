using System.Buffers.Binary;

namespace Serverless.Privacy.Ckks;

/// <summary>
/// RNS-CKKS parameters: ring degree N, the ciphertext modulus chain q_0 ... q_L (q_0 first; a
/// rescale drops the last one), the special prime P used by hybrid key switching, and the
/// default scale Δ of fresh encodings at the top level. Primes are generated deterministically
/// from the bit sizes (the largest NTT-friendly primes q ≡ 1 mod 2N of each size), so two parties
/// that agree on (N, bit sizes, scale) agree on the primes; the SHA-256 <see cref="Hash"/> binds
/// every serialized object to its parameters.
/// </summary>
public sealed class CkksParameters
{
    /// <summary>
    /// Largest log2(Q·P) for 128-bit classical security with a ternary secret and error σ ≈ 3.2,
    /// from the Homomorphic Encryption Security Standard (Albrecht et al., HomomorphicEncryption.org,
    /// November 2018, Table 1, "uniform ternary secret", λ = 128, classical):
    /// N = 4096 → 109, 8192 → 218, 16384 → 438, 32768 → 881.
    /// </summary>
    public static int MaxModulusBits(int n) => n switch
    {
        4096 => 109,
        8192 => 218,
        16384 => 438,
        32768 => 881,
        _ => throw new ArgumentOutOfRangeException(nameof(n), n, "N must be 4096, 8192, 16384 or 32768"),
    };

    private readonly int[] _modulusBits;
    private readonly ulong[] _primes;

    private CkksParameters(int n, int[] modulusBits, int specialBits, double scale, bool insecure)
    {
        N = n;
        _modulusBits = modulusBits;
        SpecialModulusBits = specialBits;
        Scale = scale;
        IsInsecureForTests = insecure;
        // Generate per bit size, largest first, all distinct; the special prime is drawn last.
        var used = new HashSet<ulong>();
        _primes = new ulong[modulusBits.Length];
        for (var i = 0; i < modulusBits.Length; i++)
        {
            _primes[i] = Serverless.Privacy.Arithmetic.Primes.NttFriendly(modulusBits[i], 1, n, used)[0];
            used.Add(_primes[i]);
        }
        SpecialPrime = Serverless.Privacy.Arithmetic.Primes.NttFriendly(specialBits, 1, n, used)[0];
        Hash = SHA256.HashData(CanonicalBytes());
    }

    /// <summary>Ring degree N; the number of complex slots is N/2.</summary>
    public int N { get; }

    public int SlotCount => N / 2;

    /// <summary>Bit sizes of q_0 ... q_L.</summary>
    public IReadOnlyList<int> ModulusBits => _modulusBits;

    public int SpecialModulusBits { get; }

    /// <summary>Default scale Δ of fresh encodings at the top level.</summary>
    public double Scale { get; }

    /// <summary>Top level L: a fresh ciphertext has L + 1 primes and can be rescaled L times.</summary>
    public int MaxLevel => _modulusBits.Length - 1;

    /// <summary>True when the set exceeds the 128-bit bound and was accepted only for tests.</summary>
    public bool IsInsecureForTests { get; }

    /// <summary>The primes q_0 ... q_L.</summary>
    public IReadOnlyList<ulong> Primes => _primes;

    public ulong SpecialPrime { get; }

    /// <summary>log2(Q·P) rounded up from the bit sizes.</summary>
    public int TotalModulusBits => _modulusBits.Sum() + SpecialModulusBits;

    /// <summary>SHA-256 of the canonical encoding; serialized keys and ciphertexts carry it.</summary>
    public ReadOnlyMemory<byte> Hash { get; }

    /// <summary>
    /// Creates a parameter set. Throws <see cref="ArgumentException"/> if it exceeds the 128-bit
    /// security bound, unless <paramref name="allowInsecureForTests"/> is set (never in production).
    /// </summary>
    /// <param name="n">4096, 8192, 16384 or 32768.</param>
    /// <param name="modulusBits">Bit sizes of q_0 ... q_L, each 20..60; q_0 should leave room above the scale for the result's magnitude.</param>
    /// <param name="specialModulusBits">Bit size of the special prime P (20..60); at least the largest q_i keeps key-switching noise small.</param>
    /// <param name="scale">Δ, typically 2^(bits of the middle primes).</param>
    /// <param name="allowInsecureForTests">Accept sets above the standard's bound (tests only).</param>
    public static CkksParameters Create(int n, IReadOnlyList<int> modulusBits, int specialModulusBits, double scale, bool allowInsecureForTests = false)
    {
        ArgumentNullException.ThrowIfNull(modulusBits);
        var max = MaxModulusBits(n);
        if (modulusBits.Count < 1 || modulusBits.Count > 64)
            throw new ArgumentException("the modulus chain needs 1 to 64 primes", nameof(modulusBits));
        foreach (var b in modulusBits)
            if (b < 20 || b > 60) throw new ArgumentException($"prime sizes must be 20..60 bits, got {b}", nameof(modulusBits));
        if (specialModulusBits < 20 || specialModulusBits > 60)
            throw new ArgumentException($"the special prime must be 20..60 bits, got {specialModulusBits}", nameof(specialModulusBits));
        if (!double.IsFinite(scale) || scale < 2 || Math.Log2(scale) > 60)
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be between 2 and 2^60");
        var total = modulusBits.Sum() + specialModulusBits;
        if (total > max && !allowInsecureForTests)
            throw new ArgumentException(
                $"log2(QP) = {total} exceeds {max}, the HomomorphicEncryption.org 128-bit bound for N = {n}; " +
                "use fewer or smaller primes, a larger N, or (tests only) allowInsecureForTests: true");
        return new CkksParameters(n, [.. modulusBits], specialModulusBits, scale, total > max);
    }

    /// <summary>
    /// Default sets, chosen like SEAL's examples: N=4096 [39,31 | 39] Δ=2^31; N=8192 [60,40,40 | 60]
    /// Δ=2^40; N=16384 [60,40×6 | 60] Δ=2^40; N=32768 [60,40×18 | 60] Δ=2^40 (depths 1, 2, 6, 18).
    /// </summary>
    public static CkksParameters Default(int n) => n switch
    {
        4096 => Create(4096, [39, 31], 39, Math.Pow(2, 31)),
        8192 => Create(8192, [60, 40, 40], 60, Math.Pow(2, 40)),
        16384 => Create(16384, [60, 40, 40, 40, 40, 40, 40], 60, Math.Pow(2, 40)),
        32768 => Create(32768, [60, .. Enumerable.Repeat(40, 18)], 60, Math.Pow(2, 40)),
        _ => throw new ArgumentOutOfRangeException(nameof(n), n, "N must be 4096, 8192, 16384 or 32768"),
    };

    internal byte[] CanonicalBytes()
    {
        var bytes = new byte[4 + 4 + _modulusBits.Length * 12 + 12 + 8 + 1];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(span, N);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], _modulusBits.Length);
        var o = 8;
        for (var i = 0; i < _modulusBits.Length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[o..], _modulusBits[i]);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(o + 4)..], _primes[i]);
            o += 12;
        }
        BinaryPrimitives.WriteInt32LittleEndian(span[o..], SpecialModulusBits);
        BinaryPrimitives.WriteUInt64LittleEndian(span[(o + 4)..], SpecialPrime);
        o += 12;
        BinaryPrimitives.WriteDoubleLittleEndian(span[o..], Scale);
        span[o + 8] = IsInsecureForTests ? (byte)1 : (byte)0;
        return bytes;
    }

    public override string ToString() =>
        $"CKKS N={N} Q=[{string.Join(",", _modulusBits)}] P={SpecialModulusBits} log2(QP)={TotalModulusBits} scale=2^{Math.Log2(Scale):0.##}";
}
