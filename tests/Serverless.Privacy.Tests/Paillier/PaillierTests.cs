using System.Numerics;
using Serverless.Privacy.Paillier;
using Serverless.Privacy.Serialization;

namespace Serverless.Privacy.Tests.Paillier;

public static class PaillierKeys
{
    /// <summary>A production-size key, generated once.</summary>
    public static readonly Lazy<PaillierPrivateKey> Key2048 = new(() => PaillierPrivateKey.Generate(2048));

    /// <summary>A 256-bit TEST-ONLY key (never for real data) so the 10^4-value sum stays fast (encryption is one ModPow per value).</summary>
    public static readonly Lazy<PaillierPrivateKey> TestKey256 = new(() => PaillierPrivateKey.Generate(256, allowInsecureForTests: true));
}

public sealed class PaillierTests
{
    [Fact]
    public void Sum_OfTenThousandValues_IsExact_TestSizeKey()
    {
        var sk = PaillierKeys.TestKey256.Value;
        var pk = sk.PublicKey;
        var rng = new Random(10_000);
        var values = new long[10_000];
        for (var i = 0; i < values.Length; i++) values[i] = rng.NextInt64(-1_000_000_000, 1_000_000_000_000);
        var ciphertexts = new PaillierCiphertext[values.Length];
        Parallel.For(0, values.Length, i => ciphertexts[i] = pk.Encrypt(values[i]));
        var sum = pk.Sum(ciphertexts);
        Assert.Equal(values.Select(v => (BigInteger)v).Aggregate(BigInteger.Add), sk.DecryptSigned(sum));
    }

    [Fact]
    public void Sum_MultiplyByConstant_AddPlain_AreExact_2048()
    {
        var sk = PaillierKeys.Key2048.Value;
        var pk = sk.PublicKey;
        Assert.Equal(2048, pk.Bits);
        var values = Enumerable.Range(0, 16).Select(i => (BigInteger)(i * 123_456_789L - 2_000_000_000L)).ToArray();
        var ciphertexts = new PaillierCiphertext[values.Length];
        Parallel.For(0, values.Length, i => ciphertexts[i] = pk.Encrypt(values[i]));
        var expected = values.Aggregate(BigInteger.Add);
        Assert.Equal(expected, sk.DecryptSigned(pk.Sum(ciphertexts)));
        Assert.Equal(expected * 7 + 5, sk.DecryptSigned(pk.AddPlain(pk.MultiplyByConstant(pk.Sum(ciphertexts), 7), 5)));
        Assert.Equal(-values[3], sk.DecryptSigned(pk.MultiplyByConstant(ciphertexts[3], -1)));
        var big = BigInteger.Pow(10, 500);
        Assert.Equal(big, sk.Decrypt(pk.Encrypt(big)));
        // Encryption is randomized.
        Assert.NotEqual(pk.Encrypt(1).Value, pk.Encrypt(1).Value);
    }

    [Fact]
    public void KeySizes_OutsideTheStandard_AreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PaillierPrivateKey.Generate(1024));
        var other = PaillierKeys.TestKey256.Value.PublicKey;
        var c = other.Encrypt(1);
        Assert.Throws<ArgumentException>(() => PaillierKeys.Key2048.Value.Decrypt(c));
    }

    [Fact]
    public void Serialization_RoundTrips()
    {
        var sk = PaillierKeys.Key2048.Value;
        var pk = PaillierSerializer.LoadPublicKey(PaillierSerializer.Save(sk.PublicKey));
        Assert.Equal(sk.PublicKey.N, pk.N);
        var sk2 = PaillierSerializer.LoadPrivateKey(PaillierSerializer.Save(sk));
        var c = PaillierSerializer.LoadCiphertext(pk, PaillierSerializer.Save(pk.Encrypt(424242)));
        Assert.Equal(424242, sk2.Decrypt(c));
        Assert.Throws<HeFormatException>(() => PaillierSerializer.LoadPublicKey(PaillierSerializer.Save(PaillierKeys.TestKey256.Value.PublicKey)));
        Assert.Throws<HeFormatException>(() => PaillierSerializer.LoadCiphertext(PaillierKeys.TestKey256.Value.PublicKey, PaillierSerializer.Save(c)));
    }

    [Fact]
    public void Fuzz_Loaders_OnlyThrowHeFormatException()
    {
        var sk = PaillierKeys.TestKey256.Value;
        var pk = sk.PublicKey;
        var samples = new (byte[] Valid, Action<byte[]> Load)[]
        {
            (PaillierSerializer.Save(pk), b => PaillierSerializer.LoadPublicKey(b, allowInsecureForTests: true)),
            (PaillierSerializer.Save(sk), b => PaillierSerializer.LoadPrivateKey(b, allowInsecureForTests: true)),
            (PaillierSerializer.Save(pk.Encrypt(99)), b => PaillierSerializer.LoadCiphertext(pk, b)),
        };
        var rng = new Random(77);
        foreach (var (valid, load) in samples)
        {
            load(valid);
            var inputs = new List<byte[]> { Array.Empty<byte>(), valid.Append((byte)1).ToArray() };
            for (var i = 0; i < 60; i++)
            {
                var flipped = (byte[])valid.Clone();
                flipped[rng.Next(Math.Min(valid.Length, i % 2 == 0 ? 48 : valid.Length))] ^= (byte)(1 << rng.Next(8));
                inputs.Add(flipped);
                inputs.Add(valid.AsSpan(0, rng.Next(valid.Length)).ToArray());
                var random = new byte[rng.Next(300)];
                rng.NextBytes(random);
                inputs.Add(random);
            }
            foreach (var v in new[] { int.MaxValue, int.MinValue, 0, -1, 100_000 })
            {
                var changed = (byte[])valid.Clone();
                BitConverter.GetBytes(v).CopyTo(changed, 7);
                inputs.Add(changed);
            }
            foreach (var input in inputs)
            {
                try { load(input); }
                catch (HeFormatException) { }
                catch (Exception ex) { Assert.Fail($"{ex.GetType().Name} escaped: {ex.Message}"); }
            }
        }
    }
}
