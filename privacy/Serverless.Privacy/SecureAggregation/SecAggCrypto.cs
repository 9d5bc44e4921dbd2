using System.Buffers.Binary;
using System.Text;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>What a complaint's proof shows (<see cref="SecAggCrypto.JudgeComplaint"/>).</summary>
internal enum ComplaintFinding { Unproven, Proven, Disproved }

/// <summary>
/// The cryptographic building blocks of the protocol, all from .NET: ECDH over NIST P-256 (FIPS 186-4)
/// for key agreement, HKDF-SHA256 (RFC 5869) to turn a shared x-coordinate into a seed or key bound to
/// the round and the pair, AES-256-GCM (SP 800-38D) for share bundles, ECDSA P-256 with SHA-256 for
/// the malicious-server variant, and a SHA-256 commitment to the self-mask seed.
/// </summary>
/// <remarks>
/// Public are the wire facts another party must agree on: the key pair and its 33-byte encoding, the
/// shared scalar, the seed commitment and the bundle's length. Mask and share derivation, bundle
/// sealing and signatures stay inside <see cref="SecAggClient"/> and <see cref="SecAggServer"/>.
/// </remarks>
public static class SecAggCrypto
{
    /// <summary>Bytes of an advertised public key.</summary>
    public const int PublicKeyLength = 33;   // compressed SEC1 point (0x02 | y mod 2) || X: half the bytes of 0x04 || X || Y
    /// <summary>Bytes of a shared secret: a private scalar or a self-mask seed.</summary>
    public const int SecretLength = 32;      // P-256 private scalar; self-mask seed
    internal static readonly int ShareLength = ShamirSecretSharing.ShareLength(SecretLength);
    // Sender and recipient are bound by the AAD (BundleAad), so the plaintext is the two shares alone.
    internal static readonly int BundlePlainLength = 2 * ShareLength;
    /// <summary>Bytes of one sealed share bundle: nonce, both shares, GCM tag.</summary>
    public static readonly int BundleCipherLength = 12 + BundlePlainLength + 16;
    internal const int SignatureLength = 64;   // IEEE P1363 r || s

    private static readonly byte[] MaskInfo = Encoding.ASCII.GetBytes("SecAgg/v1/pairwise-mask");
    private static readonly byte[] ShareInfo = Encoding.ASCII.GetBytes("SecAgg/v2/share-encryption-directional");
    private static readonly byte[] CommitPrefix = Encoding.ASCII.GetBytes("SecAgg/v1/self-mask-commitment");
    private static readonly byte[] SignPrefix = Encoding.ASCII.GetBytes("SecAgg/v2/advertise");

    /// <summary>A fresh P-256 key pair from the platform's CSPRNG.</summary>
    public static ECDiffieHellman NewKeyPair() => ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    /// <summary>The public half of <paramref name="key"/> as advertised: <see cref="PublicKeyLength"/> bytes.</summary>
    public static byte[] ExportPublic(ECDiffieHellman key) => Encode(key.ExportParameters(false).Q);

    /// <summary>The compressed SEC1 encoding of a P-256 point (SEC 1 v2, §2.3.3).</summary>
    internal static byte[] Encode(ECPoint q)
    {
        var result = new byte[PublicKeyLength];
        result[0] = (byte)(0x02 | (q.Y![^1] & 1));
        q.X!.CopyTo(result, 1);
        return result;
    }

    /// <summary>Imports and validates an advertised public key (length, encoding, point on the curve).</summary>
    public static bool TryImportPublic(byte[]? encoded, out ECDiffieHellmanPublicKey? key)
    {
        key = null;
        if (encoded is null || encoded.Length != PublicKeyLength || (encoded[0] != 0x02 && encoded[0] != 0x03)) return false;
        if (!P256.TryDecompress(encoded.AsSpan(1), encoded[0] == 0x03, out var y)) return false;
        try
        {
            using var ecdh = ECDiffieHellman.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = encoded[1..], Y = y },
            });
            key = ecdh.PublicKey;
            return true;
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    /// <summary>Private scalar (32 bytes, big-endian) of a key pair: the secret that is Shamir-shared.</summary>
    public static byte[] ExportPrivateScalar(ECDiffieHellman key) => key.ExportParameters(true).D!;

    /// <summary>Rebuilds a key pair from its scalar and checks it matches the advertised public key.</summary>
    internal static ECDiffieHellman? TryRebuild(byte[] scalar, byte[] advertisedPublic)
    {
        try
        {
            var key = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = scalar });
            if (CryptographicOperations.FixedTimeEquals(ExportPublic(key), advertisedPublic)) return key;
            key.Dispose();
            return null;
        }
        catch (CryptographicException)
        {
            return null;
        }
    }

    /// <summary>Seed of the pairwise mask between <paramref name="a"/> and <paramref name="b"/> (symmetric in the pair).</summary>
    internal static byte[] MaskSeed(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, int a, int b) =>
        Derive(own, peer, roundId, MaskInfo, a, b);

    /// <summary>
    /// AES-256-GCM key for the share bundle <paramref name="from"/> sends <paramref name="to"/>. Directional: the
    /// recipient reveals it as a complaint's proof, and it must open that bundle only, not the one going the other
    /// way (which holds the recipient's own shares; revealing both directions would let a server that corrupts
    /// bundles on purpose collect a client's shares from its complaints).
    /// </summary>
    internal static byte[] ShareKey(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, int from, int to) =>
        Derive(own, peer, roundId, ShareInfo, from, to, ordered: true);

    internal const int ShareKeyLength = ShareComplaint.ShareKeyLength;

    private static byte[] Derive(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, byte[] label, int a, int b, bool ordered = false)
    {
        var shared = own.DeriveRawSecretAgreement(peer);
        try
        {
            var info = new byte[label.Length + 8];
            label.CopyTo(info, 0);
            BinaryPrimitives.WriteInt32BigEndian(info.AsSpan(label.Length), ordered ? a : Math.Min(a, b));
            BinaryPrimitives.WriteInt32BigEndian(info.AsSpan(label.Length + 4), ordered ? b : Math.Max(a, b));
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, ShareKeyLength, roundId, info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    internal static byte[] EncryptBundle(byte[] key, byte[] roundId, int from, int to, byte[] sShare, byte[] bShare)
    {
        var plain = new byte[BundlePlainLength];
        sShare.CopyTo(plain, 0);
        bShare.CopyTo(plain, ShareLength);
        var output = new byte[BundleCipherLength];
        RandomNumberGenerator.Fill(output.AsSpan(0, 12));
        using var gcm = new AesGcm(key, 16);
        gcm.Encrypt(output.AsSpan(0, 12), plain, output.AsSpan(12, BundlePlainLength), output.AsSpan(12 + BundlePlainLength), BundleAad(roundId, from, to));
        CryptographicOperations.ZeroMemory(plain);
        return output;
    }

    /// <summary>Decrypts and checks a bundle; returns a reason on failure.</summary>
    internal static string? TryDecryptBundle(byte[] key, byte[] roundId, int from, int to, byte[]? cipher, out byte[] sShare, out byte[] bShare) =>
        OpenBundle(key, roundId, from, to, cipher, out sShare, out bShare, out _);

    /// <summary>
    /// What a complaint's revealed key shows about the bundle the server stored from <paramref name="from"/> for
    /// <paramref name="to"/>: it opens to bad contents (proven, with the reason), to valid shares (disproved: the
    /// complainer lied), or not at all (unproven: a wrong key and a garbage bundle look the same, so neither side is blamed).
    /// </summary>
    internal static (ComplaintFinding Finding, string? Reason) JudgeComplaint(byte[]? revealedKey, byte[] roundId, int from, int to, byte[]? cipher)
    {
        if (revealedKey is not { Length: ShareKeyLength }) return (ComplaintFinding.Unproven, "no key was revealed");
        var problem = OpenBundle(revealedKey, roundId, from, to, cipher, out var s, out var b, out var opened);
        CryptographicOperations.ZeroMemory(s);
        CryptographicOperations.ZeroMemory(b);
        if (problem is null) return (ComplaintFinding.Disproved, null);
        return opened ? (ComplaintFinding.Proven, problem) : (ComplaintFinding.Unproven, problem);
    }

    private static string? OpenBundle(byte[] key, byte[] roundId, int from, int to, byte[]? cipher, out byte[] sShare, out byte[] bShare, out bool opened)
    {
        sShare = bShare = [];
        opened = false;
        if (cipher is null || cipher.Length != BundleCipherLength) return $"share bundle has {cipher?.Length ?? 0} bytes, expected {BundleCipherLength}";
        var plain = new byte[BundlePlainLength];
        try
        {
            using var gcm = new AesGcm(key, 16);
            gcm.Decrypt(cipher.AsSpan(0, 12), cipher.AsSpan(12, BundlePlainLength), cipher.AsSpan(12 + BundlePlainLength), plain, BundleAad(roundId, from, to));
        }
        catch (AuthenticationTagMismatchException)
        {
            return "share bundle failed authentication";
        }
        opened = true;
        try
        {
            sShare = plain[..ShareLength];
            bShare = plain[ShareLength..];
            if (!ShamirSecretSharing.IsWellFormed(sShare, SecretLength) || !ShamirSecretSharing.IsWellFormed(bShare, SecretLength))
            {
                CryptographicOperations.ZeroMemory(sShare);
                CryptographicOperations.ZeroMemory(bShare);
                return "share bundle holds values outside the field";
            }
            return null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private static byte[] BundleAad(byte[] roundId, int from, int to)
    {
        var aad = new byte[roundId.Length + 8];
        roundId.CopyTo(aad, 0);
        BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length), from);
        BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length + 4), to);
        return aad;
    }

    /// <summary>SHA-256 commitment of <paramref name="owner"/> to its self-mask seed in one round (domain-separated).</summary>
    public static byte[] Commit(byte[] roundId, int owner, ReadOnlySpan<byte> seed)
    {
        var input = new byte[CommitPrefix.Length + roundId.Length + 4 + seed.Length];
        CommitPrefix.CopyTo(input, 0);
        roundId.CopyTo(input, CommitPrefix.Length);
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(CommitPrefix.Length + roundId.Length), owner);
        seed.CopyTo(input.AsSpan(CommitPrefix.Length + roundId.Length + 4));
        return SHA256.HashData(input);
    }

    private static readonly byte[] ParametersPrefix = Encoding.ASCII.GetBytes("SecAgg/v2/parameters");
    private static readonly byte[] ViewPrefix = Encoding.ASCII.GetBytes("SecAgg/v2/advertised-set");
    private static readonly byte[] ConsistencyPrefix = Encoding.ASCII.GetBytes("SecAgg/v2/consistency");

    /// <summary>
    /// SHA-256 over a canonical encoding of every round parameter (ids sorted): what each signature binds, so two clients
    /// whose signatures verify for each other were given the same round, threshold, graph degree and seed.
    /// </summary>
    internal static byte[] ParametersDigest(SecAggRoundParameters p)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(ParametersPrefix);
        AppendBlock(h, p.RoundId);
        var ids = (int[])p.ClientIds.Clone();
        Array.Sort(ids);
        AppendInt(h, ids.Length);
        foreach (var id in ids) AppendInt(h, id);
        AppendInt(h, p.Threshold);
        AppendInt(h, p.VectorLength);
        AppendInt(h, p.RingBits);
        AppendInt(h, p.NeighbourDegree);
        AppendBlock(h, p.GraphSeed ?? []);
        AppendInt(h, p.RequireSignatures ? 1 : 0);
        return h.GetHashAndReset();
    }

    /// <summary>
    /// Digest of the accepted advertisements U1 (id, c_pk, s_pk in ascending id order) under the parameters: the joint
    /// graph seed of SecAgg+ in the malicious variant, and part of the consistency signature (every signer saw one U1).
    /// </summary>
    internal static byte[] ViewDigest(byte[] parametersDigest, IEnumerable<(int Id, byte[] C, byte[] S)> advertised)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        h.AppendData(ViewPrefix);
        h.AppendData(parametersDigest);
        foreach (var (id, c, s) in advertised.OrderBy(a => a.Id))
        {
            AppendInt(h, id);
            h.AppendData(c);
            h.AppendData(s);
        }
        return h.GetHashAndReset();
    }

    /// <summary>Bytes an advertisement signature covers: label, context (federation, round, stage), parameter digest, id, c_pk, s_pk.</summary>
    internal static byte[] AdvertisementSignedBytes(byte[] context, byte[] parametersDigest, int clientId, byte[] cPk, byte[] sPk)
    {
        var w = new System.Buffers.ArrayBufferWriter<byte>(SignPrefix.Length + context.Length + 32 + 4 + cPk.Length + sPk.Length + 8);
        w.Write(SignPrefix);
        WriteBlock(w, context);
        w.Write(parametersDigest);
        WriteInt(w, clientId);
        WriteBlock(w, cPk);
        WriteBlock(w, sPk);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Bytes a consistency signature covers: label, context, parameter digest, the advertised-set digest, the signer, the sorted survivor set U3.</summary>
    internal static byte[] ConsistencySignedBytes(byte[] context, byte[] parametersDigest, byte[] viewDigest, int signer, IReadOnlyCollection<int> survivors)
    {
        var ids = survivors.Order().ToArray();
        var w = new System.Buffers.ArrayBufferWriter<byte>(ConsistencyPrefix.Length + context.Length + 64 + 8 + 4 * ids.Length);
        w.Write(ConsistencyPrefix);
        WriteBlock(w, context);
        w.Write(parametersDigest);
        w.Write(viewDigest);
        WriteInt(w, signer);
        WriteInt(w, ids.Length);
        foreach (var id in ids) WriteInt(w, id);
        return w.WrittenSpan.ToArray();
    }

    internal static byte[] Sign(ECDsa key, byte[] signedBytes) =>
        key.SignData(signedBytes, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    /// <summary>Verifies an ECDSA P-256 / SHA-256 signature (r || s) under a SubjectPublicKeyInfo; false for anything malformed.</summary>
    internal static bool Verify(byte[]? verificationKeySpki, byte[] signedBytes, byte[]? signature)
    {
        if (verificationKeySpki is null || signature is null || signature.Length != SignatureLength) return false;
        try
        {
            using var key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(verificationKeySpki, out var read);
            if (read != verificationKeySpki.Length || key.KeySize != 256) return false;
            return key.VerifyData(signedBytes, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        // PlatformNotSupportedException: the import's answer to a curve OID the platform does not know
        // (one flipped bit in P-256's OID, found by fuzzing); before, it escaped into the server's round.
        catch (Exception e) when (e is CryptographicException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    private static void AppendInt(IncrementalHash h, int value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(b, value);
        h.AppendData(b);
    }

    private static void AppendBlock(IncrementalHash h, byte[] data)
    {
        AppendInt(h, data.Length);
        h.AppendData(data);
    }

    private static void WriteInt(System.Buffers.ArrayBufferWriter<byte> w, int value)
    {
        BinaryPrimitives.WriteInt32BigEndian(w.GetSpan(4), value);
        w.Advance(4);
    }

    private static void WriteBlock(System.Buffers.ArrayBufferWriter<byte> w, byte[] data)
    {
        WriteInt(w, data.Length);
        w.Write(data);
    }
}

/// <summary>
/// Point decompression on NIST P-256: y from x and y's parity. The curve is y^2 = x^3 - 3x + b over F_p (FIPS 186-4,
/// D.1.2.3; SEC 2 v2, §2.4.2). p = 3 mod 4, so a square root of r is r^((p+1)/4) (SEC 1 v2, §2.3.4 step 2.4.1).
/// Public values only: nothing here needs to run in constant time.
/// </summary>
internal static class P256
{
    private static readonly BigInteger Prime = Parse("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
    private static readonly BigInteger B = Parse("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b");
    private static readonly BigInteger SqrtExponent = (Prime + 1) / 4;

    /// <summary>The 32-byte big-endian y of the point with this x and parity; false when x is not on the curve.</summary>
    internal static bool TryDecompress(ReadOnlySpan<byte> x32, bool yOdd, out byte[] y32)
    {
        y32 = [];
        if (x32.Length != 32) return false;
        var x = new BigInteger(x32, isUnsigned: true, isBigEndian: true);
        if (x >= Prime) return false;
        var rhs = ((x * x % Prime * x - 3 * x + B) % Prime + Prime) % Prime;
        var y = BigInteger.ModPow(rhs, SqrtExponent, Prime);
        if (y * y % Prime != rhs) return false;   // rhs is not a square: no point has this x
        if (y.IsEven == yOdd) y = (Prime - y) % Prime;
        if (y.IsEven == yOdd) return false;   // y = 0 has one parity only (P-256 has no such point)
        y32 = new byte[32];
        return y.TryWriteBytes(y32.AsSpan(32 - y.GetByteCount(isUnsigned: true)), out _, isUnsigned: true, isBigEndian: true);
    }

    private static BigInteger Parse(string hex) => new(Convert.FromHexString(hex), isUnsigned: true, isBigEndian: true);
}
