using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Serialization;

/// <summary>
/// Versioned binary format for CKKS objects. Layout (little-endian): magic "CKKS", version u16,
/// kind u8, then for everything but parameters the SHA-256 of the parameters (32 bytes), then the
/// body. Residues are u64 per coefficient, limb by limb. Uniform polynomials travel as their
/// 32-byte seed (public keys, evaluation keys, fresh symmetric ciphertexts), halving the size.
/// Loaders check magic, version, kind, parameter hash, every size against the parameters before
/// allocating, every residue against its prime, and the exact length; anything wrong throws
/// <see cref="HeFormatException"/>, never another exception type.
/// </summary>
public static class CkksSerializer
{
    public const ushort FormatVersion = 1;

    private static ReadOnlySpan<byte> Magic => "CKKS"u8;

    private enum Kind : byte
    {
        Parameters = 1,
        SecretKey = 2,
        PublicKey = 3,
        RelinearizationKey = 4,
        GaloisKeys = 5,
        Plaintext = 6,
        Ciphertext = 7,
    }

    // ------------------------------------------------------------------ parameters

    public static byte[] Save(CkksParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var w = Header(Kind.Parameters, null, 64);
        w.WriteBytes(parameters.CanonicalBytes());
        return w.ToArray();
    }

    /// <summary>Loads and re-derives a parameter set; the stored primes must match the derived ones.</summary>
    /// <exception cref="HeFormatException">Malformed, insecure without opt-out, or inconsistent.</exception>
    public static CkksParameters LoadParameters(ReadOnlySpan<byte> data, bool allowInsecureForTests = false)
    {
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.Parameters, null);
        var n = r.ReadInt32("N");
        if (n is not (4096 or 8192 or 16384 or 32768)) throw new HeFormatException($"N = {n} is not 4096, 8192, 16384 or 32768");
        var count = r.ReadInt32InRange("prime count", 1, 64);
        var bits = new int[count];
        var primes = new ulong[count];
        for (var i = 0; i < count; i++)
        {
            bits[i] = r.ReadInt32InRange("prime bits", 20, 60);
            primes[i] = r.ReadUInt64("prime");
        }
        var specialBits = r.ReadInt32InRange("special prime bits", 20, 60);
        var special = r.ReadUInt64("special prime");
        var scale = r.ReadDouble("scale");
        var insecure = r.ReadByte("insecure flag");
        r.ExpectEnd("parameters");
        if (insecure > 1) throw new HeFormatException("insecure flag must be 0 or 1");
        if (insecure == 1 && !allowInsecureForTests) throw new HeFormatException("the parameters exceed the 128-bit security bound; refusing to load them");
        CkksParameters p;
        try
        {
            p = CkksParameters.Create(n, bits, specialBits, scale, allowInsecureForTests);
        }
        catch (ArgumentException ex)
        {
            throw new HeFormatException($"invalid parameters: {ex.Message}", ex);
        }
        if ((insecure == 1) != p.IsInsecureForTests) throw new HeFormatException("insecure flag does not match the modulus size");
        for (var i = 0; i < count; i++)
            if (p.Primes[i] != primes[i]) throw new HeFormatException($"prime {i} does not match the deterministic derivation");
        if (p.SpecialPrime != special) throw new HeFormatException("special prime does not match the deterministic derivation");
        return p;
    }

    // ------------------------------------------------------------------ ciphertexts and plaintexts

    /// <summary>Serializes a ciphertext; a fresh symmetric encryption is written seeded (half size).</summary>
    public static byte[] Save(Ciphertext ciphertext)
    {
        ArgumentNullException.ThrowIfNull(ciphertext);
        var ctx = ciphertext.Context;
        var seeded = ciphertext.Seed is { } seed && ciphertext.Size == 2 && SeedStillMatches(ciphertext, seed);
        var polys = seeded ? 1 : ciphertext.Size;
        var w = Header(Kind.Ciphertext, ctx, 64 + polys * (ciphertext.Level + 1) * ctx.N * 8);
        w.WriteInt32(ciphertext.Level);
        w.WriteInt32(ciphertext.Size);
        w.WriteDouble(ciphertext.Scale);
        w.WriteByte(seeded ? (byte)1 : (byte)0);
        if (seeded) w.WriteBytes(ciphertext.Seed);
        for (var k = 0; k < polys; k++) w.WriteWords(ciphertext.Poly(k));
        return w.ToArray();
    }

    /// <exception cref="HeFormatException">Malformed input or other parameters.</exception>
    public static Ciphertext LoadCiphertext(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.Ciphertext, context);
        var level = r.ReadInt32InRange("level", 0, context.MaxLevel);
        var size = r.ReadInt32InRange("size", 2, 3);
        var scale = ReadScale(ref r, context, level, size);
        var seeded = r.ReadByte("seed flag");
        if (seeded > 1) throw new HeFormatException("seed flag must be 0 or 1");
        if (seeded == 1 && size != 2) throw new HeFormatException("only size-2 ciphertexts travel seeded");
        var seed = seeded == 1 ? r.ReadBytes(UniformExpander.SeedLength, "seed").ToArray() : null;
        var polys = seeded == 1 ? 1 : size;
        ExpectWords(ref r, (long)polys * (level + 1) * context.N, "ciphertext polynomials");
        var ct = new Ciphertext(context, size, level, scale);
        for (var k = 0; k < polys; k++) ReadResidues(ref r, context, ct.Poly(k), level + 1, limbOffset: 0);
        if (seed is not null)
        {
            for (var i = 0; i <= level; i++)
                UniformExpander.Expand(seed, Encryptor.SymmetricDomain, i, context.Moduli[i].Value, ct.Limb(1, i));
            ct.Seed = seed;
        }
        r.ExpectEnd("ciphertext");
        return ct;
    }

    public static byte[] Save(Plaintext plaintext)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        var ctx = plaintext.Context;
        var w = Header(Kind.Plaintext, ctx, 64 + (plaintext.Level + 1) * ctx.N * 8);
        w.WriteInt32(plaintext.Level);
        w.WriteDouble(plaintext.Scale);
        w.WriteWords(plaintext.Poly);
        return w.ToArray();
    }

    public static Plaintext LoadPlaintext(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.Plaintext, context);
        var level = r.ReadInt32InRange("level", 0, context.MaxLevel);
        var scale = ReadScale(ref r, context, level, 1);
        ExpectWords(ref r, (long)(level + 1) * context.N, "plaintext polynomial");
        var pt = new Plaintext(context, level, scale);
        ReadResidues(ref r, context, pt.Poly, level + 1, 0);
        r.ExpectEnd("plaintext");
        return pt;
    }

    // ------------------------------------------------------------------ keys

    /// <summary>Serializes the secret key. Protect the bytes (e.g. envelope encryption): they are the key.</summary>
    public static byte[] Save(SecretKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var w = Header(Kind.SecretKey, key.Context, 64 + key.Data.Length * 8);
        w.WriteWords(key.Data);
        return w.ToArray();
    }

    public static SecretKey LoadSecretKey(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.SecretKey, context);
        var limbs = context.MaxLevel + 2;
        ExpectWords(ref r, (long)limbs * context.N, "secret key");
        var words = new ulong[limbs * context.N];
        ReadKeyResidues(ref r, context, words, limbs);
        r.ExpectEnd("secret key");
        SecretKey.CountDeserialization();
        return new SecretKey(context, words);
    }

    public static byte[] Save(PublicKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var w = Header(Kind.PublicKey, key.Context, 64 + key.B.Length * 8);
        w.WriteBytes(key.Seed);
        w.WriteWords(key.B);
        return w.ToArray();
    }

    public static PublicKey LoadPublicKey(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.PublicKey, context);
        var seed = r.ReadBytes(UniformExpander.SeedLength, "seed").ToArray();
        var limbs = context.MaxLevel + 1;
        ExpectWords(ref r, (long)limbs * context.N, "public key");
        var b = new ulong[limbs * context.N];
        ReadResidues(ref r, context, b, limbs, 0);
        r.ExpectEnd("public key");
        var a = new ulong[limbs * context.N];
        for (var i = 0; i < limbs; i++)
            UniformExpander.Expand(seed, KeyGenerator.PublicKeyDomain, i, context.Moduli[i].Value, a.AsSpan(i * context.N, context.N));
        return new PublicKey(context, b, a, seed);
    }

    public static byte[] Save(RelinearizationKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var w = Header(Kind.RelinearizationKey, key.Context, 64 + key.Key.Digits * key.Key.B[0].Length * 8);
        WriteSwitchingKey(w, key.Key);
        return w.ToArray();
    }

    public static RelinearizationKey LoadRelinearizationKey(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.RelinearizationKey, context);
        var perKey = SwitchingKeyBytes(context);
        if (r.Remaining != perKey) throw new HeFormatException($"relinearization key body is {r.Remaining} bytes, expected {perKey}");
        var key = ReadSwitchingKey(ref r, context);
        r.ExpectEnd("relinearization key");
        return new RelinearizationKey(context, key);
    }

    public static byte[] Save(GaloisKeys keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var ctx = keys.Context;
        var w = Header(Kind.GaloisKeys, ctx, 64 + (int)Math.Min(int.MaxValue / 2, keys.Keys.Count * SwitchingKeyBytes(ctx)));
        w.WriteInt32(keys.Keys.Count);
        foreach (var (g, key) in keys.Keys.OrderBy(k => k.Key))
        {
            w.WriteUInt64(g);
            WriteSwitchingKey(w, key);
        }
        return w.ToArray();
    }

    public static GaloisKeys LoadGaloisKeys(CkksContext context, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(context);
        var r = new FormatReader(data);
        ReadHeader(ref r, Kind.GaloisKeys, context);
        var count = r.ReadInt32InRange("key count", 0, context.N);
        var perKey = SwitchingKeyBytes(context) + 8;
        if (r.Remaining != (long)count * perKey)
            throw new HeFormatException($"Galois key body is {r.Remaining} bytes, expected {count} keys of {perKey}");
        var keys = new Dictionary<ulong, KeySwitchKey>();
        var twoN = (ulong)(2 * context.N);
        for (var i = 0; i < count; i++)
        {
            var g = r.ReadUInt64("Galois element");
            if ((g & 1) == 0 || g >= twoN || g == 1) throw new HeFormatException($"Galois element {g} is not an odd number in (1, 2N)");
            if (keys.ContainsKey(g)) throw new HeFormatException($"duplicate Galois element {g}");
            keys[g] = ReadSwitchingKey(ref r, context);
        }
        r.ExpectEnd("Galois keys");
        return new GaloisKeys(context, keys);
    }

    // ------------------------------------------------------------------ helpers

    private static FormatWriter Header(Kind kind, CkksContext? context, int capacity)
    {
        var w = new FormatWriter(capacity + 48);
        w.WriteBytes(Magic);
        w.WriteUInt16(FormatVersion);
        w.WriteByte((byte)kind);
        if (context is not null) w.WriteBytes(context.Parameters.Hash.Span);
        return w;
    }

    private static void ReadHeader(ref FormatReader r, Kind kind, CkksContext? context)
    {
        if (!r.ReadBytes(4, "magic").SequenceEqual(Magic)) throw new HeFormatException("not a CKKS object (bad magic)");
        var version = r.ReadUInt16("version");
        if (version != FormatVersion) throw new HeFormatException($"unsupported format version {version} (this build reads {FormatVersion})");
        var k = r.ReadByte("kind");
        if (k != (byte)kind) throw new HeFormatException($"expected a {kind}, found kind {k}");
        if (context is not null)
        {
            var hash = r.ReadBytes(32, "parameter hash");
            if (!CryptographicOperations.FixedTimeEquals(hash, context.Parameters.Hash.Span))
                throw new HeFormatException("parameter hash mismatch: the object was made under other CKKS parameters");
        }
    }

    private static double ReadScale(ref FormatReader r, CkksContext context, int level, int size)
    {
        var scale = r.ReadDouble("scale");
        var maxBits = 0.0;
        for (var i = 0; i <= level; i++) maxBits += Math.Log2(context.Moduli[i].Value);
        if (!double.IsFinite(scale) || scale < 1 || Math.Log2(scale) > maxBits * Math.Max(1, size - 1))
            throw new HeFormatException($"scale {scale} is not a finite value in [1, Q]");
        return scale;
    }

    private static void ExpectWords(ref FormatReader r, long words, string what)
    {
        // Checked before allocating: the length must match the parameters exactly.
        if (r.Remaining != words * 8) throw new HeFormatException($"{what}: {r.Remaining} bytes present, parameters require {words * 8}");
    }

    /// <summary>Reads <paramref name="limbs"/> limbs of N residues, each below its prime (limb i ↔ q_(limbOffset+i)).</summary>
    private static void ReadResidues(ref FormatReader r, CkksContext context, Span<ulong> destination, int limbs, int limbOffset)
    {
        var n = context.N;
        for (var i = 0; i < limbs; i++)
        {
            var q = context.Moduli[limbOffset + i].Value;
            var bytes = r.ReadBytes(n * 8, "residues");
            var dst = destination.Slice(i * n, n);
            for (var k = 0; k < n; k++)
            {
                var v = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes.Slice(k * 8, 8));
                if (v >= q) throw new HeFormatException($"residue {v} in limb {limbOffset + i} is not below its prime {q}");
                dst[k] = v;
            }
        }
    }

    /// <summary>Key layout: limbs q_0..q_L then P.</summary>
    private static void ReadKeyResidues(ref FormatReader r, CkksContext context, Span<ulong> destination, int limbs)
    {
        var n = context.N;
        ReadResidues(ref r, context, destination[..((limbs - 1) * n)], limbs - 1, 0);
        ReadResidues(ref r, context, destination.Slice((limbs - 1) * n, n), 1, context.SpecialIndex);
    }

    private static long SwitchingKeyBytes(CkksContext context) =>
        UniformExpander.SeedLength + (long)(context.MaxLevel + 1) * (context.MaxLevel + 2) * context.N * 8;

    private static void WriteSwitchingKey(FormatWriter w, KeySwitchKey key)
    {
        w.WriteBytes(key.Seed);
        foreach (var b in key.B) w.WriteWords(b);
    }

    private static KeySwitchKey ReadSwitchingKey(ref FormatReader r, CkksContext context)
    {
        var n = context.N;
        var digits = context.MaxLevel + 1;
        var limbs = context.MaxLevel + 2;
        var seed = r.ReadBytes(UniformExpander.SeedLength, "seed").ToArray();
        var b = new ulong[digits][];
        var a = new ulong[digits][];
        for (var j = 0; j < digits; j++)
        {
            b[j] = new ulong[limbs * n];
            ReadKeyResidues(ref r, context, b[j], limbs);
            a[j] = new ulong[limbs * n];
            for (var i = 0; i < limbs; i++)
                UniformExpander.Expand(seed, KeySwitchKey.Domain(j), i, context.Moduli[i].Value, a[j].AsSpan(i * n, n));
        }
        return new KeySwitchKey(b, a, seed);
    }

    private static bool SeedStillMatches(Ciphertext ct, byte[] seed)
    {
        var ctx = ct.Context;
        var buffer = new ulong[ctx.N];
        for (var i = 0; i <= ct.Level; i++)
        {
            UniformExpander.Expand(seed, Encryptor.SymmetricDomain, i, ctx.Moduli[i].Value, buffer);
            if (!buffer.AsSpan().SequenceEqual(ct.Limb(1, i))) return false;
        }
        return true;
    }
}
