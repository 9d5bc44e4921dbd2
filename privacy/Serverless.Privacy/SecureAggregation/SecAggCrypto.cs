using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// The cryptographic building blocks of the protocol, all from .NET: ECDH over NIST P-256 (FIPS 186-4)
/// for key agreement, HKDF-SHA256 (RFC 5869) to turn a shared x-coordinate into a seed or key bound to
/// the round and the pair, AES-256-GCM (SP 800-38D) for share bundles, ECDSA P-256 with SHA-256 for
/// the malicious-server variant, and a SHA-256 commitment to the self-mask seed.
/// </summary>
internal static class SecAggCrypto
{
    public const int PublicKeyLength = 65;   // uncompressed SEC1 point 0x04 || X || Y
    public const int SecretLength = 32;      // P-256 private scalar; self-mask seed
    public static readonly int ShareLength = ShamirSecretSharing.ShareLength(SecretLength);
    public static readonly int BundlePlainLength = 8 + 2 * ShareLength;
    public static readonly int BundleCipherLength = 12 + BundlePlainLength + 16;
    public const int SignatureLength = 64;   // IEEE P1363 r || s

    private static readonly byte[] MaskInfo = Encoding.ASCII.GetBytes("SecAgg/v1/pairwise-mask");
    private static readonly byte[] ShareInfo = Encoding.ASCII.GetBytes("SecAgg/v1/share-encryption");
    private static readonly byte[] CommitPrefix = Encoding.ASCII.GetBytes("SecAgg/v1/self-mask-commitment");
    private static readonly byte[] SignPrefix = Encoding.ASCII.GetBytes("SecAgg/v1/advertise");

    public static ECDiffieHellman NewKeyPair() => ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);

    public static byte[] ExportPublic(ECDiffieHellman key)
    {
        var q = key.ExportParameters(false).Q;
        var result = new byte[PublicKeyLength];
        result[0] = 0x04;
        q.X!.CopyTo(result, 1);
        q.Y!.CopyTo(result, 33);
        return result;
    }

    /// <summary>Imports and validates an advertised public key (length, encoding, point on the curve).</summary>
    public static bool TryImportPublic(byte[]? encoded, out ECDiffieHellmanPublicKey? key)
    {
        key = null;
        if (encoded is null || encoded.Length != PublicKeyLength || encoded[0] != 0x04) return false;
        try
        {
            using var ecdh = ECDiffieHellman.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = encoded[1..33], Y = encoded[33..] },
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
    public static ECDiffieHellman? TryRebuild(byte[] scalar, byte[] advertisedPublic)
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
    public static byte[] MaskSeed(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, int a, int b) =>
        Derive(own, peer, roundId, MaskInfo, a, b);

    /// <summary>AES-256-GCM key for share bundles between the pair.</summary>
    public static byte[] ShareKey(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, int a, int b) =>
        Derive(own, peer, roundId, ShareInfo, a, b);

    private static byte[] Derive(ECDiffieHellman own, ECDiffieHellmanPublicKey peer, byte[] roundId, byte[] label, int a, int b)
    {
        var shared = own.DeriveRawSecretAgreement(peer);
        try
        {
            var info = new byte[label.Length + 8];
            label.CopyTo(info, 0);
            BinaryPrimitives.WriteInt32BigEndian(info.AsSpan(label.Length), Math.Min(a, b));
            BinaryPrimitives.WriteInt32BigEndian(info.AsSpan(label.Length + 4), Math.Max(a, b));
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, shared, 32, roundId, info);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(shared);
        }
    }

    public static byte[] EncryptBundle(byte[] key, byte[] roundId, int from, int to, byte[] sShare, byte[] bShare)
    {
        var plain = new byte[BundlePlainLength];
        BinaryPrimitives.WriteInt32BigEndian(plain, from);
        BinaryPrimitives.WriteInt32BigEndian(plain.AsSpan(4), to);
        sShare.CopyTo(plain, 8);
        bShare.CopyTo(plain, 8 + ShareLength);
        var output = new byte[BundleCipherLength];
        RandomNumberGenerator.Fill(output.AsSpan(0, 12));
        using var gcm = new AesGcm(key, 16);
        gcm.Encrypt(output.AsSpan(0, 12), plain, output.AsSpan(12, BundlePlainLength), output.AsSpan(12 + BundlePlainLength), BundleAad(roundId, from, to));
        CryptographicOperations.ZeroMemory(plain);
        return output;
    }

    /// <summary>Decrypts and checks a bundle; returns a reason on failure.</summary>
    public static string? TryDecryptBundle(byte[] key, byte[] roundId, int from, int to, byte[]? cipher, out byte[] sShare, out byte[] bShare)
    {
        sShare = bShare = [];
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
        if (BinaryPrimitives.ReadInt32BigEndian(plain) != from || BinaryPrimitives.ReadInt32BigEndian(plain.AsSpan(4)) != to)
            return "share bundle names the wrong sender or recipient";
        sShare = plain[8..(8 + ShareLength)];
        bShare = plain[(8 + ShareLength)..];
        if (!ShamirSecretSharing.IsWellFormed(sShare, SecretLength) || !ShamirSecretSharing.IsWellFormed(bShare, SecretLength))
            return "share bundle holds values outside the field";
        return null;
    }

    private static byte[] BundleAad(byte[] roundId, int from, int to)
    {
        var aad = new byte[roundId.Length + 8];
        roundId.CopyTo(aad, 0);
        BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length), from);
        BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length + 4), to);
        return aad;
    }

    public static byte[] Commit(byte[] roundId, int owner, ReadOnlySpan<byte> seed)
    {
        var input = new byte[CommitPrefix.Length + roundId.Length + 4 + seed.Length];
        CommitPrefix.CopyTo(input, 0);
        roundId.CopyTo(input, CommitPrefix.Length);
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(CommitPrefix.Length + roundId.Length), owner);
        seed.CopyTo(input.AsSpan(CommitPrefix.Length + roundId.Length + 4));
        return SHA256.HashData(input);
    }

    public static byte[] AdvertisementDigestInput(byte[] roundId, int clientId, byte[] cPk, byte[] sPk)
    {
        var input = new byte[SignPrefix.Length + roundId.Length + 4 + cPk.Length + sPk.Length];
        var o = 0;
        SignPrefix.CopyTo(input, o); o += SignPrefix.Length;
        roundId.CopyTo(input, o); o += roundId.Length;
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(o), clientId); o += 4;
        cPk.CopyTo(input, o); o += cPk.Length;
        sPk.CopyTo(input, o);
        return input;
    }

    public static byte[] Sign(ECDsa key, byte[] roundId, int clientId, byte[] cPk, byte[] sPk) =>
        key.SignData(AdvertisementDigestInput(roundId, clientId, cPk, sPk), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);

    public static bool Verify(byte[] verificationKeySpki, AdvertiseKeysMessage m, byte[] roundId)
    {
        if (m.Signature is null || m.Signature.Length != SignatureLength) return false;
        try
        {
            using var key = ECDsa.Create();
            key.ImportSubjectPublicKeyInfo(verificationKeySpki, out _);
            return key.VerifyData(AdvertisementDigestInput(roundId, m.ClientId, m.EncryptionPublicKey, m.MaskingPublicKey), m.Signature,
                HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }
}
