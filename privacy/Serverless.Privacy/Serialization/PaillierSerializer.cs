using Serverless.Privacy.Paillier;

namespace Serverless.Privacy.Serialization;

/// <summary>
/// Versioned binary format for Paillier keys and ciphertexts: magic "PAIL", version u16, kind u8,
/// then length-prefixed big-endian unsigned integers. Loaders check every length before reading,
/// every value's range (n of an allowed size and odd, p·q = n, 0 &lt; c &lt; n² and coprime to n),
/// and the key fingerprint a ciphertext carries; bad input throws <see cref="HeFormatException"/>.
/// </summary>
public static class PaillierSerializer
{
    public const ushort FormatVersion = 1;
    private const int MaxModulusBytes = 4096 / 8;

    private static ReadOnlySpan<byte> Magic => "PAIL"u8;

    public static byte[] Save(PaillierPublicKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var w = Header(1);
        WriteInteger(w, key.N);
        return w.ToArray();
    }

    /// <param name="data">Serialized key.</param>
    /// <param name="allowInsecureForTests">Accept moduli other than 2048 / 3072 bits (≥ 256).</param>
    public static PaillierPublicKey LoadPublicKey(ReadOnlySpan<byte> data, bool allowInsecureForTests = false)
    {
        var r = new FormatReader(data);
        ReadHeader(ref r, 1);
        var n = ReadInteger(ref r, MaxModulusBytes, "n");
        r.ExpectEnd("public key");
        CheckModulus(n, allowInsecureForTests);
        return new PaillierPublicKey(n);
    }

    /// <summary>Serializes the private key (p, q). Protect the bytes: they are the key.</summary>
    public static byte[] Save(PaillierPrivateKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var w = Header(2);
        WriteInteger(w, key.P);
        WriteInteger(w, key.Q);
        return w.ToArray();
    }

    public static PaillierPrivateKey LoadPrivateKey(ReadOnlySpan<byte> data, bool allowInsecureForTests = false)
    {
        var r = new FormatReader(data);
        ReadHeader(ref r, 2);
        var p = ReadInteger(ref r, MaxModulusBytes / 2 + 1, "p");
        var q = ReadInteger(ref r, MaxModulusBytes / 2 + 1, "q");
        r.ExpectEnd("private key");
        if (p < 3 || q < 3 || p.IsEven || q.IsEven || p == q) throw new HeFormatException("p and q must be distinct odd primes");
        CheckModulus(p * q, allowInsecureForTests);
        if (!PaillierPrivateKey.IsProbablePrime(p, 16) || !PaillierPrivateKey.IsProbablePrime(q, 16))
            throw new HeFormatException("p and q must be prime");
        try
        {
            return new PaillierPrivateKey(p, q);
        }
        catch (ArithmeticException ex)
        {
            throw new HeFormatException("inconsistent private key", ex);
        }
    }

    public static byte[] Save(PaillierCiphertext ciphertext)
    {
        ArgumentNullException.ThrowIfNull(ciphertext);
        var w = Header(3);
        w.WriteBytes(ciphertext.Key.Fingerprint.Span);
        WriteInteger(w, ciphertext.Value);
        return w.ToArray();
    }

    public static PaillierCiphertext LoadCiphertext(PaillierPublicKey key, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(key);
        var r = new FormatReader(data);
        ReadHeader(ref r, 3);
        var fingerprint = r.ReadBytes(32, "key fingerprint");
        if (!CryptographicOperations.FixedTimeEquals(fingerprint, key.Fingerprint.Span))
            throw new HeFormatException("key fingerprint mismatch: the ciphertext was made under another Paillier key");
        var c = ReadInteger(ref r, 2 * MaxModulusBytes, "ciphertext");
        r.ExpectEnd("ciphertext");
        if (c.Sign <= 0 || c >= key.NSquared) throw new HeFormatException("ciphertext is not in (0, n²)");
        if (!BigInteger.GreatestCommonDivisor(c, key.N).IsOne) throw new HeFormatException("ciphertext is not a unit modulo n²");
        return new PaillierCiphertext(key, c);
    }

    private static void CheckModulus(BigInteger n, bool allowInsecureForTests)
    {
        var bits = n.GetBitLength();
        if (n.IsEven || bits < 256) throw new HeFormatException("n must be odd and at least 256 bits");
        if (bits is not (2048 or 3072) && !allowInsecureForTests)
            throw new HeFormatException($"a {bits}-bit Paillier modulus is not allowed (2048 or 3072 bits)");
    }

    private static FormatWriter Header(byte kind)
    {
        var w = new FormatWriter(1100);
        w.WriteBytes(Magic);
        w.WriteUInt16(FormatVersion);
        w.WriteByte(kind);
        return w;
    }

    private static void ReadHeader(ref FormatReader r, byte kind)
    {
        if (!r.ReadBytes(4, "magic").SequenceEqual(Magic)) throw new HeFormatException("not a Paillier object (bad magic)");
        var version = r.ReadUInt16("version");
        if (version != FormatVersion) throw new HeFormatException($"unsupported format version {version}");
        var k = r.ReadByte("kind");
        if (k != kind) throw new HeFormatException($"expected kind {kind}, found {k}");
    }

    private static void WriteInteger(FormatWriter w, BigInteger value)
    {
        var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        w.WriteInt32(bytes.Length);
        w.WriteBytes(bytes);
    }

    private static BigInteger ReadInteger(ref FormatReader r, int maxBytes, string what)
    {
        var length = r.ReadInt32InRange($"{what} length", 1, maxBytes);
        var bytes = r.ReadBytes(length, what);
        if (bytes[0] == 0) throw new HeFormatException($"{what} has a leading zero byte (non-canonical)");
        return new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
    }
}
