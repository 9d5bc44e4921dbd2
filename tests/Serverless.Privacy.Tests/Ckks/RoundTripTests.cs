using System.Numerics;
using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Tests.Ckks;

public sealed class RoundTripTests
{
    // Bounds: encoding rounds each coefficient to an integer, so the slot error is about
    // sqrt(N)/Δ; fresh encryption adds noise of a few ·sqrt(N)·σ per coefficient. Encoding alone:
    // 1e-6 at Δ=2^31 (N=4096), 1e-8 at Δ=2^40; encryption: 100 times that.
    private static double Bound(int n) => n == 4096 ? 1e-6 : 1e-8;

    [Theory]
    [InlineData(4096)]
    [InlineData(8192)]
    [InlineData(16384)]
    [InlineData(32768)]
    public void EncodeDecode_RecoversComplexSlots(int n)
    {
        var s = CkksSetups.ForN(n);
        var rng = new Random(n);
        var values = new Complex[s.Context.Slots];
        for (var i = 0; i < values.Length; i++) values[i] = new Complex(rng.NextDouble() * 2 - 1, rng.NextDouble() * 2 - 1);
        var pt = new Plaintext(s.Context);
        s.Encoder.Encode(values, s.Context.Parameters.Scale, s.Context.MaxLevel, pt);
        var decoded = new Complex[s.Context.Slots];
        s.Encoder.Decode(pt, decoded);
        for (var i = 0; i < values.Length; i++) Assert.True((values[i] - decoded[i]).Magnitude < Bound(n), $"slot {i}: {values[i]} vs {decoded[i]}");
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(8192)]
    [InlineData(16384)]
    [InlineData(32768)]
    public void EncryptDecrypt_PublicKey_RecoversSlots(int n)
    {
        var s = CkksSetups.ForN(n);
        var values = s.RandomVector(n + 1);
        var result = s.Decrypt(s.Encrypt(values));
        Assert.True(CkksSetup.MaxError(values, result) < Bound(n) * 100, $"max error {CkksSetup.MaxError(values, result)}");
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(8192)]
    public void EncryptDecrypt_SecretKey_RecoversSlots(int n)
    {
        var s = CkksSetups.ForN(n);
        var values = s.RandomVector(n + 2);
        var ct = s.SymmetricEncryptor.Encrypt(s.Encoder.Encode(values));
        Assert.True(CkksSetup.MaxError(values, s.Decrypt(ct)) < Bound(n) * 100);
    }

    [Fact]
    public void Encode_MatchesNaiveCanonicalEmbedding()
    {
        // Slot j must equal m(ζ^(5^j)) with ζ = e^(iπ/N): evaluate the decrypted polynomial directly.
        var s = CkksSetups.N4096.Value;
        var values = s.RandomVector(99);
        var pt = s.Encoder.Encode(values);
        var coeffs = new double[s.Context.N];
        s.Encoder.ToCenteredCoefficients(pt, coeffs);
        var twoN = 2 * s.Context.N;
        foreach (var j in new[] { 0, 1, 2, 77, 2047 })
        {
            long e = 1;
            for (var t = 0; t < j; t++) e = e * 5 % twoN;
            var sum = Complex.Zero;
            for (var k = 0; k < coeffs.Length; k++)
            {
                var angle = Math.PI * (e * k % twoN) / s.Context.N;
                sum += coeffs[k] * new Complex(Math.Cos(angle), Math.Sin(angle));
            }
            Assert.True((sum / pt.Scale - values[j]).Magnitude < 1e-6, $"slot {j}");
        }
    }

    [Fact]
    public void Decrypt_WithNoiseFlooding_StaysWithinStatedPrecision()
    {
        // Flooding at the default 2^(log2 Δ − 20) costs precision: slot error ~ 2^-20·sqrt(N) ≈ 1e-4.
        var s = CkksSetups.N8192.Value;
        var values = s.RandomVector(5);
        var ct = s.Encrypt(values);
        var pt = new Plaintext(s.Context);
        s.Decryptor.DecryptWithNoiseFlooding(ct, pt);
        var flooded = s.Encoder.DecodeReal(pt);
        var err = CkksSetup.MaxError(values, flooded);
        Assert.True(err < 1e-3, $"error {err}");
        // ...and it really changes the decryption (noise was added).
        var plain = s.Decrypt(ct);
        Assert.True(CkksSetup.MaxError(plain, flooded) > 1e-9);
    }
}
