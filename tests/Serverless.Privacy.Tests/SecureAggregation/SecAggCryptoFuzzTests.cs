using System.Security.Cryptography;
using Serverless.Privacy.SecureAggregation;
using Xunit.Abstractions;

namespace Serverless.Privacy.Tests.SecureAggregation;

/// <summary>
/// The bytes inside secure-aggregation messages, after their JSON is read (<see cref="FederationFuzzTests"/>):
/// advertised public keys, encrypted share bundles and the malicious-server variant's signatures under a
/// client's SubjectPublicKeyInfo. All three are Try-style and document no exception: a malformed value
/// is a false or a reason string, so any exception at all fails.
/// </summary>
public sealed class SecAggCryptoFuzzTests(ITestOutputHelper output)
{
    /// <summary>4 × input + 64 KiB: one copy of each coordinate or plaintext, the AAD, and the key objects' managed wrappers (their state is native).</summary>
    private static LoaderSpec Spec(string name) => new(name, [], 4, 64 << 10);

    [Fact]
    public void Secagg_public_key()
    {
        using var a = SecAggCrypto.NewKeyPair();
        using var b = SecAggCrypto.NewKeyPair();
        Fuzzer.Run(Spec("secagg public key"), [SecAggCrypto.ExportPublic(a), SecAggCrypto.ExportPublic(b)], bytes =>
        {
            if (SecAggCrypto.TryImportPublic(bytes, out var key)) key!.Dispose();
        }, output);
    }

    [Fact]
    public void Secagg_share_bundle()
    {
        var key = new byte[32];
        RandomNumberGenerator.Fill(key);
        var roundId = new byte[32];
        var secret = new byte[SecAggCrypto.SecretLength];
        RandomNumberGenerator.Fill(secret);
        var shares = ShamirSecretSharing.Split(secret, 2, [1, 2, 3]);
        var sample = SecAggCrypto.EncryptBundle(key, roundId, 1, 2, shares[0], shares[1]);
        // A mutated bundle almost always dies at the GCM tag. Half the inputs of the right length are
        // re-sealed: their bytes after the nonce are taken as the plaintext and encrypted under the
        // pair's key, so the field checks behind the tag are reached.
        byte[] Reseal(byte[] input)
        {
            if (input.Length != SecAggCrypto.BundleCipherLength) return input;
            var plain = input.AsSpan(12, SecAggCrypto.BundlePlainLength).ToArray();
            var output = (byte[])input.Clone();
            var aad = new byte[roundId.Length + 8];
            roundId.CopyTo(aad, 0);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length), 1);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(aad.AsSpan(roundId.Length + 4), 2);
            using var gcm = new AesGcm(key, 16);
            gcm.Encrypt(output.AsSpan(0, 12), plain, output.AsSpan(12, plain.Length), output.AsSpan(12 + plain.Length), aad);
            return output;
        }
        // The valid sample must decrypt; so must every resealed plaintext whose checks pass.
        Assert.Null(SecAggCrypto.TryDecryptBundle(key, roundId, 1, 2, sample, out _, out _));
        var accepted = 0;
        Fuzzer.Run(Spec("secagg share bundle"), [sample], bytes =>
        {
            if (SecAggCrypto.TryDecryptBundle(key, roundId, 1, 2, bytes, out var s, out var b) is null)
            {
                accepted++;
                Assert.Equal(SecAggCrypto.ShareLength, s.Length);
                Assert.Equal(SecAggCrypto.ShareLength, b.Length);
            }
        }, output, reseal: Reseal);
        output.WriteLine($"secagg share bundle: {accepted} accepted");
    }

    [Fact]
    public void Secagg_signature_and_verification_key()
    {
        using var signer = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var spki = signer.ExportSubjectPublicKeyInfo();
        var message = "consistency check"u8.ToArray();
        var signature = SecAggCrypto.Sign(signer, message);
        // Input: the SPKI followed by the 64-byte signature (both come from the client over the wire).
        byte[] sample = [.. spki, .. signature];
        Assert.True(SecAggCrypto.Verify(spki, message, signature));
        // Found by seed 19 (iteration 62): one flipped bit in P-256's curve OID (1.2.840.10045.3.1.7 became
        // 1.2.800.10045.3.1.7) made the SPKI import throw PlatformNotSupportedException out of Verify, which
        // the server calls on every advertised key of the malicious-server variant.
        byte[][] regressions = [Convert.FromBase64String("MFkwEwYHKoZIzj0CAQYIIoZIzj0DAQcDQgAEwoMbrYiSDNhNSy8rj6D12ee0fb7P636iM59XWC58ynjex777mSHyt17CGA9l4ioszcmKGVasru22PJ1oM71s181tQEBVZt8ydKh09lqPf/WbQ6p6CUKYsMv5m6wYqI4HddV24YAUOvYkLiDk2kHL1l5LvrjwE1yhy3cJMI4U9Dc=")];
        Fuzzer.Run(Spec("secagg signature and key"), [sample], bytes =>
        {
            var cut = Math.Max(0, bytes.Length - SecAggCrypto.SignatureLength);
            SecAggCrypto.Verify(bytes[..cut], message, bytes[cut..]);
        }, output, regressions);
    }
}
