namespace Serverless.Privacy.Paillier;

/// <summary>
/// Paillier's additively homomorphic cryptosystem (EUROCRYPT 1999) with g = n + 1, for exact
/// integer sums (for example, billing totals across hospitals): E(a)·E(b) = E(a + b mod n),
/// E(a)^k = E(k·a mod n). Keys of 2048 or 3072 bits (NIST SP 800-57 Part 1 Rev. 5, Table 2: 2048-bit
/// factoring moduli give 112-bit security, 3072-bit give 128).
/// </summary>
public sealed class PaillierPublicKey
{
    internal PaillierPublicKey(BigInteger n)
    {
        N = n;
        NSquared = n * n;
        Bits = (int)n.GetBitLength();
        Fingerprint = SHA256.HashData(n.ToByteArray(isUnsigned: true, isBigEndian: true));
    }

    /// <summary>The modulus n = p·q; plaintexts live in Z_n.</summary>
    public BigInteger N { get; }

    public BigInteger NSquared { get; }

    public int Bits { get; }

    /// <summary>SHA-256 of n (big-endian); ciphertexts record it so they cannot be mixed across keys.</summary>
    public ReadOnlyMemory<byte> Fingerprint { get; }

    /// <summary>E(m) = (1 + m·n)·r^n mod n² with fresh r from <see cref="RandomNumberGenerator"/>. Negative m wraps mod n.</summary>
    public PaillierCiphertext Encrypt(BigInteger m)
    {
        var reduced = BigInteger.Remainder(m, N);
        if (reduced.Sign < 0) reduced += N;
        var r = RandomUnit();
        var gm = (BigInteger.One + reduced * N) % NSquared; // (1+n)^m = 1 + m·n mod n²
        var c = gm * BigInteger.ModPow(r, N, NSquared) % NSquared;
        return new PaillierCiphertext(this, c);
    }

    /// <summary>E(a + b).</summary>
    public PaillierCiphertext Add(PaillierCiphertext a, PaillierCiphertext b)
    {
        Check(a, nameof(a));
        Check(b, nameof(b));
        return new PaillierCiphertext(this, a.Value * b.Value % NSquared);
    }

    /// <summary>E(a + k) without a fresh encryption of k.</summary>
    public PaillierCiphertext AddPlain(PaillierCiphertext a, BigInteger k)
    {
        Check(a, nameof(a));
        var reduced = BigInteger.Remainder(k, N);
        if (reduced.Sign < 0) reduced += N;
        return new PaillierCiphertext(this, a.Value * ((BigInteger.One + reduced * N) % NSquared) % NSquared);
    }

    /// <summary>E(k·a) for a plaintext constant k (negative k wraps mod n).</summary>
    public PaillierCiphertext MultiplyByConstant(PaillierCiphertext a, BigInteger k)
    {
        Check(a, nameof(a));
        var reduced = BigInteger.Remainder(k, N);
        if (reduced.Sign < 0) reduced += N;
        return new PaillierCiphertext(this, BigInteger.ModPow(a.Value, reduced, NSquared));
    }

    /// <summary>Sum of many ciphertexts.</summary>
    public PaillierCiphertext Sum(IEnumerable<PaillierCiphertext> ciphertexts)
    {
        ArgumentNullException.ThrowIfNull(ciphertexts);
        var acc = BigInteger.One; // E(0) with r = 1: fine as an accumulator, never published alone
        var any = false;
        foreach (var c in ciphertexts)
        {
            Check(c, nameof(ciphertexts));
            acc = acc * c.Value % NSquared;
            any = true;
        }
        if (!any) throw new ArgumentException("cannot Sum: no ciphertexts", nameof(ciphertexts));
        return new PaillierCiphertext(this, acc);
    }

    internal bool SameKey(PaillierPublicKey other) =>
        ReferenceEquals(this, other) || CryptographicOperations.FixedTimeEquals(Fingerprint.Span, other.Fingerprint.Span);

    private void Check(PaillierCiphertext c, string name)
    {
        ArgumentNullException.ThrowIfNull(c, name);
        if (!SameKey(c.Key)) throw new ArgumentException("the ciphertext was made under another Paillier key", name);
    }

    private BigInteger RandomUnit()
    {
        var bytes = new byte[(Bits + 7) / 8 + 8];
        while (true)
        {
            RandomNumberGenerator.Fill(bytes);
            var r = new BigInteger(bytes, isUnsigned: true) % N; // 64 extra bits: bias below 2^-64
            if (r.IsZero) continue;
            if (BigInteger.GreatestCommonDivisor(r, N).IsOne) return r;
        }
    }
}

/// <summary>A Paillier ciphertext: an element of Z*_{n²}, bound to its key.</summary>
public sealed class PaillierCiphertext
{
    internal PaillierCiphertext(PaillierPublicKey key, BigInteger value)
    {
        Key = key;
        Value = value;
    }

    public PaillierPublicKey Key { get; }

    public BigInteger Value { get; }
}

/// <summary>The private key (p, q) with CRT decryption constants.</summary>
public sealed class PaillierPrivateKey
{
    private readonly BigInteger _p;
    private readonly BigInteger _q;
    private readonly BigInteger _pSquared;
    private readonly BigInteger _qSquared;
    private readonly BigInteger _hp;
    private readonly BigInteger _hq;
    private readonly BigInteger _qInvModP;

    internal PaillierPrivateKey(BigInteger p, BigInteger q)
    {
        if (p < q) (p, q) = (q, p);
        _p = p;
        _q = q;
        PublicKey = new PaillierPublicKey(p * q);
        _pSquared = p * p;
        _qSquared = q * q;
        // h_p = L_p(g^(p−1) mod p²)^−1 mod p, with g = n + 1 (Paillier 1999, Section 7 CRT decryption).
        _hp = ModInverse(L(BigInteger.ModPow(PublicKey.N + 1, p - 1, _pSquared), p), p);
        _hq = ModInverse(L(BigInteger.ModPow(PublicKey.N + 1, q - 1, _qSquared), q), q);
        _qInvModP = ModInverse(q % p, p);
    }

    public PaillierPublicKey PublicKey { get; }

    internal BigInteger P => _p;

    internal BigInteger Q => _q;

    /// <summary>
    /// Generates a key with an n of exactly <paramref name="bits"/> bits from two primes drawn with
    /// <see cref="RandomNumberGenerator"/> and checked by Miller–Rabin (64 rounds).
    /// </summary>
    /// <param name="bits">2048 or 3072; smaller sizes (≥ 256) only with <paramref name="allowInsecureForTests"/>.</param>
    public static PaillierPrivateKey Generate(int bits = 2048, bool allowInsecureForTests = false)
    {
        if (bits is not (2048 or 3072))
        {
            if (!allowInsecureForTests)
                throw new ArgumentOutOfRangeException(nameof(bits), bits, "Paillier keys must be 2048 or 3072 bits (NIST SP 800-57: 112 / 128-bit security)");
            if (bits < 256 || bits > 4096 || bits % 2 != 0)
                throw new ArgumentOutOfRangeException(nameof(bits), bits, "test keys must be an even size of 256..4096 bits");
        }
        while (true)
        {
            var p = RandomPrime(bits / 2);
            var q = RandomPrime(bits / 2);
            if (p == q) continue;
            var n = p * q;
            if (n.GetBitLength() != bits) continue;
            // gcd(n, φ(n)) = 1 holds for equal-size primes, but check: g = n+1 needs it.
            if (!BigInteger.GreatestCommonDivisor(n, (p - 1) * (q - 1)).IsOne) continue;
            return new PaillierPrivateKey(p, q);
        }
    }

    /// <summary>The plaintext in [0, n).</summary>
    public BigInteger Decrypt(PaillierCiphertext ciphertext)
    {
        ArgumentNullException.ThrowIfNull(ciphertext);
        if (!PublicKey.SameKey(ciphertext.Key)) throw new ArgumentException("the ciphertext was made under another Paillier key", nameof(ciphertext));
        var c = ciphertext.Value;
        var mp = L(BigInteger.ModPow(c % _pSquared, _p - 1, _pSquared), _p) * _hp % _p;
        var mq = L(BigInteger.ModPow(c % _qSquared, _q - 1, _qSquared), _q) * _hq % _q;
        // CRT: m = mq + q·((mp − mq)·q^−1 mod p)
        var diff = (mp - mq) % _p;
        if (diff.Sign < 0) diff += _p;
        return mq + _q * (diff * _qInvModP % _p);
    }

    /// <summary>The plaintext as a signed value in (−n/2, n/2]: sums of negative values come back negative.</summary>
    public BigInteger DecryptSigned(PaillierCiphertext ciphertext)
    {
        var m = Decrypt(ciphertext);
        return m > PublicKey.N / 2 ? m - PublicKey.N : m;
    }

    private static BigInteger L(BigInteger x, BigInteger d) => (x - 1) / d;

    private static BigInteger ModInverse(BigInteger a, BigInteger m)
    {
        // Extended Euclid.
        BigInteger oldR = a, r = m, oldS = 1, s = 0;
        while (!r.IsZero)
        {
            var quotient = BigInteger.Divide(oldR, r);
            (oldR, r) = (r, oldR - quotient * r);
            (oldS, s) = (s, oldS - quotient * s);
        }
        if (!oldR.IsOne) throw new ArithmeticException("not invertible");
        var result = oldS % m;
        return result.Sign < 0 ? result + m : result;
    }

    private static readonly int[] s_smallPrimes = SmallPrimes(2000);

    private static int[] SmallPrimes(int limit)
    {
        var sieve = new bool[limit + 1];
        var list = new List<int>();
        for (var i = 2; i <= limit; i++)
        {
            if (sieve[i]) continue;
            list.Add(i);
            for (var j = i * i; j <= limit; j += i) sieve[j] = true;
        }
        return [.. list];
    }

    internal static BigInteger RandomPrime(int bits)
    {
        var bytes = new byte[(bits + 7) / 8];
        while (true)
        {
            RandomNumberGenerator.Fill(bytes);
            var candidate = new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
            var excess = bytes.Length * 8 - bits;
            candidate >>= excess;
            // Top two bits set (so p·q has exactly 2·bits bits) and odd.
            candidate |= BigInteger.One << (bits - 1);
            candidate |= BigInteger.One << (bits - 2);
            candidate |= BigInteger.One;
            if (IsProbablePrime(candidate, 64)) return candidate;
        }
    }

    /// <summary>Trial division, then Miller–Rabin with random bases from RandomNumberGenerator.</summary>
    internal static bool IsProbablePrime(BigInteger n, int rounds)
    {
        if (n < 2) return false;
        foreach (var sp in s_smallPrimes)
        {
            if (n == sp) return true;
            if (n % sp == 0) return false;
        }
        var d = n - 1;
        var s = 0;
        while (d.IsEven) { d >>= 1; s++; }
        var bytes = new byte[n.GetByteCount(isUnsigned: true) + 8];
        for (var round = 0; round < rounds; round++)
        {
            RandomNumberGenerator.Fill(bytes);
            var a = new BigInteger(bytes, isUnsigned: true) % (n - 3) + 2;
            var x = BigInteger.ModPow(a, d, n);
            if (x.IsOne || x == n - 1) continue;
            var composite = true;
            for (var i = 1; i < s; i++)
            {
                x = BigInteger.ModPow(x, 2, n);
                if (x == n - 1) { composite = false; break; }
            }
            if (composite) return false;
        }
        return true;
    }
}
