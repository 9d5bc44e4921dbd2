using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;
using Xunit.Abstractions;

namespace Serverless.Privacy.Tests.Ckks;

/// <summary>
/// Valid samples of every CKKS object, built once, at the smallest parameters the format accepts
/// (N = 4096, one level: q_0, q_1, P) so a full parse of a bit-flipped key stays cheap.
/// </summary>
public sealed class CkksSamples : IDisposable
{
    public CkksSamples()
    {
        Parameters = CkksParameters.Create(4096, [60, 40], 40, Math.Pow(2, 40), allowInsecureForTests: true);
        Context = new CkksContext(Parameters);
        var keygen = new KeyGenerator(Context);
        SecretKey = keygen.SecretKey;
        var publicKey = keygen.CreatePublicKey();
        var plain = new Encoder(Context).Encode(Enumerable.Range(0, 16).Select(i => i / 16.0).ToArray());
        var fresh = new Encryptor(Context, publicKey).Encrypt(plain);
        var symmetric = new Encryptor(Context, SecretKey).Encrypt(plain);
        var bottom = new Encryptor(Context, publicKey).Encrypt(plain);
        new Evaluator(Context).ModSwitchToInPlace(bottom, 0);

        ParameterBytes = CkksSerializer.Save(Parameters);
        Ciphertexts = [CkksSerializer.Save(fresh), CkksSerializer.Save(symmetric), CkksSerializer.Save(bottom)];
        PlaintextBytes = CkksSerializer.Save(plain);
        SecretKeyBytes = CkksSerializer.Save(SecretKey);
        PublicKeyBytes = CkksSerializer.Save(publicKey);
        RelinearizationKeyBytes = CkksSerializer.Save(keygen.CreateRelinearizationKey());
        GaloisKeyBytes = CkksSerializer.Save(keygen.CreateGaloisKeys([1]));
    }

    public CkksParameters Parameters { get; }
    public CkksContext Context { get; }
    public SecretKey SecretKey { get; }
    public byte[] ParameterBytes { get; }
    public byte[][] Ciphertexts { get; }
    public byte[] PlaintextBytes { get; }
    public byte[] SecretKeyBytes { get; }
    public byte[] PublicKeyBytes { get; }
    public byte[] RelinearizationKeyBytes { get; }
    public byte[] GaloisKeyBytes { get; }

    public void Dispose() => SecretKey.Dispose();
}

/// <summary>
/// The CKKS loaders (<see cref="CkksSerializer"/>): every one documents <see cref="HeFormatException"/> as its only failure.
/// Allocation bound, every loader here: 4 × input + 2 MiB. The loaders copy the input at most once
/// into residues (u64 per u64 read: 1 ×) and build a parsed object of the same size (1 ×); two more
/// for slack. The 2 MiB intercept covers what the parameters, not the input, dictate: a public
/// key's or switching key's uniform polynomial a expanded from its 32-byte seed ((L + 2) limbs × N
/// × 8 B per digit, 2 × 3 × 4096 × 8 = 196 KiB here), the seeded ciphertext's expanded second
/// polynomial, and exception messages.
/// </summary>
public sealed class CkksSerializerFuzzTests(CkksSamples s, ITestOutputHelper output) : IClassFixture<CkksSamples>
{
    private void Fuzz(string name, IReadOnlyList<byte[]> samples, Action<byte[]> load)
    {
        Fuzzer.Run(new LoaderSpec(name, [typeof(HeFormatException)], BytesPerInputByte: 4, FixedBytes: 2 << 20), samples, load, output);
    }

    [Fact] public void Parameters() => Fuzz("ckks parameters", [s.ParameterBytes], b => CkksSerializer.LoadParameters(b, allowInsecureForTests: true));
    [Fact] public void Ciphertext() => Fuzz("ckks ciphertext", s.Ciphertexts, b => CkksSerializer.LoadCiphertext(s.Context, b));
    [Fact] public void Plaintext() => Fuzz("ckks plaintext", [s.PlaintextBytes], b => CkksSerializer.LoadPlaintext(s.Context, b));
    [Fact] public void Secret_key() => Fuzz("ckks secret key", [s.SecretKeyBytes], b => CkksSerializer.LoadSecretKey(s.Context, b).Dispose());
    [Fact] public void Public_key() => Fuzz("ckks public key", [s.PublicKeyBytes], b => CkksSerializer.LoadPublicKey(s.Context, b));
    [Fact] public void Relinearization_key() => Fuzz("ckks relinearization key", [s.RelinearizationKeyBytes], b => CkksSerializer.LoadRelinearizationKey(s.Context, b));
    [Fact] public void Galois_keys() => Fuzz("ckks galois keys", [s.GaloisKeyBytes], b => CkksSerializer.LoadGaloisKeys(s.Context, b));
}
