using System.Numerics;
using Serverless.Privacy.Paillier;
using Serverless.Privacy.Serialization;
using Xunit.Abstractions;

namespace Serverless.Privacy.Tests.Paillier;

/// <summary>
/// The Paillier loaders (<see cref="PaillierSerializer"/>), which document <see cref="HeFormatException"/> only, on a
/// 512-bit key so that a parse stays cheap. Allocation bound 4 × input + 2 MiB, as for CKKS: one copy of
/// the input into big integers, the key's derived values, slack; the intercept is exception messages
/// and BigInteger scratch.
/// </summary>
public sealed class PaillierSerializerFuzzTests(ITestOutputHelper output)
{
    private static readonly PaillierPrivateKey Key = PaillierPrivateKey.Generate(512, allowInsecureForTests: true);

    private void Fuzz(string name, IReadOnlyList<byte[]> samples, Action<byte[]> load)
    {
        Fuzzer.Run(new LoaderSpec(name, [typeof(HeFormatException)], BytesPerInputByte: 4, FixedBytes: 2 << 20), samples, load, output);
    }

    [Fact] public void Public_key() => Fuzz("paillier public key", [PaillierSerializer.Save(Key.PublicKey)], b => PaillierSerializer.LoadPublicKey(b, allowInsecureForTests: true));
    [Fact] public void Private_key() => Fuzz("paillier private key", [PaillierSerializer.Save(Key)], b => PaillierSerializer.LoadPrivateKey(b, allowInsecureForTests: true));

    [Fact]
    public void Ciphertext() => Fuzz("paillier ciphertext",
        [PaillierSerializer.Save(Key.PublicKey.Encrypt(new BigInteger(42))), PaillierSerializer.Save(Key.PublicKey.Encrypt(BigInteger.Zero))],
        b => PaillierSerializer.LoadCiphertext(Key.PublicKey, b));
}
