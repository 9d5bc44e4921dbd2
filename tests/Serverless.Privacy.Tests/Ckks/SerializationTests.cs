using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;

namespace Serverless.Privacy.Tests.Ckks;

public sealed class SerializationTests
{
    private static CkksSetup S => CkksSetups.N4096.Value;

    [Fact]
    public void Parameters_RoundTrip_AndHashBindsThem()
    {
        var p = S.Context.Parameters;
        var loaded = CkksSerializer.LoadParameters(CkksSerializer.Save(p));
        Assert.Equal(p.Primes, loaded.Primes);
        Assert.Equal(p.SpecialPrime, loaded.SpecialPrime);
        Assert.True(p.Hash.Span.SequenceEqual(loaded.Hash.Span));
        Assert.False(p.Hash.Span.SequenceEqual(CkksParameters.Default(8192).Hash.Span));
    }

    [Fact]
    public void InsecureParameters_AreRefusedUnlessOptedOut()
    {
        var ex = Assert.Throws<ArgumentException>(() => CkksParameters.Create(4096, [60, 40], 40, Math.Pow(2, 40)));
        Assert.Contains("109", ex.Message);
        Assert.Contains("HomomorphicEncryption.org", ex.Message);
        var insecure = CkksParameters.Create(4096, [60, 40], 40, Math.Pow(2, 40), allowInsecureForTests: true);
        Assert.True(insecure.IsInsecureForTests);
        var bytes = CkksSerializer.Save(insecure);
        Assert.Throws<HeFormatException>(() => CkksSerializer.LoadParameters(bytes));
        Assert.True(CkksSerializer.LoadParameters(bytes, allowInsecureForTests: true).IsInsecureForTests);
        foreach (var n in new[] { 4096, 8192, 16384, 32768 })
            Assert.True(CkksParameters.Default(n).TotalModulusBits <= CkksParameters.MaxModulusBits(n));
    }

    [Fact]
    public void Keys_And_Ciphertexts_RoundTrip_AndStillWork()
    {
        var s = S;
        var ctx = s.Context;
        var sk = CkksSerializer.LoadSecretKey(ctx, CkksSerializer.Save(s.SecretKey));
        var pk = CkksSerializer.LoadPublicKey(ctx, CkksSerializer.Save(s.PublicKey));
        var rk = CkksSerializer.LoadRelinearizationKey(ctx, CkksSerializer.Save(s.RelinKey!));
        var gk = CkksSerializer.LoadGaloisKeys(ctx, CkksSerializer.Save(new KeyGenerator(ctx, s.SecretKey).CreateGaloisKeys([3], includeConjugation: true)));
        Assert.True(gk.HasStep(3) && gk.HasConjugation);

        var values = s.RandomVector(21);
        var ct = new Encryptor(ctx, pk).Encrypt(s.Encoder.Encode(values));
        var ct2 = CkksSerializer.LoadCiphertext(ctx, CkksSerializer.Save(ct));
        var ev = new Evaluator(ctx, rk, gk);
        var prod = new Ciphertext(ctx);
        ev.MultiplyRelinearizeRescale(ct2, ct2, prod);
        ev.RotateInPlace(prod, 3);
        var prod2 = CkksSerializer.LoadCiphertext(ctx, CkksSerializer.Save(prod));
        var result = s.Encoder.DecodeReal(new Decryptor(ctx, sk).Decrypt(prod2));
        var expected = Enumerable.Range(0, ctx.Slots).Select(i => values[(i + 3) % ctx.Slots] * values[(i + 3) % ctx.Slots]).ToArray();
        Assert.True(CkksSetup.MaxError(expected, result) < 1e-3);

        var pt = s.Encoder.Encode(values);
        var pt2 = CkksSerializer.LoadPlaintext(ctx, CkksSerializer.Save(pt));
        Assert.Equal(pt.Scale, pt2.Scale);
        Assert.True(CkksSetup.MaxError(values, s.Encoder.DecodeReal(pt2)) < 1e-6);
    }

    [Fact]
    public void SeededForms_AreAboutHalfSize()
    {
        var s = S;
        var n = s.Context.N;
        var limbs = s.Context.MaxLevel + 1;
        var sym = s.SymmetricEncryptor.Encrypt(s.Encoder.Encode(s.RandomVector(1)));
        var seeded = CkksSerializer.Save(sym);
        Assert.InRange(seeded.Length, limbs * n * 8, limbs * n * 8 + 200);
        var full = CkksSerializer.Save(s.Encrypt(s.RandomVector(1)));
        Assert.InRange(full.Length, 2 * limbs * n * 8, 2 * limbs * n * 8 + 200);
        var back = CkksSerializer.LoadCiphertext(s.Context, seeded);
        Assert.True(CkksSetup.MaxError(s.RandomVector(1), s.Decrypt(back)) < 1e-4);
        // Once c1 changes, the ciphertext is written in full.
        s.Evaluator.RotateInPlace(back, 1);
        Assert.Equal(full.Length, CkksSerializer.Save(back).Length);
        Assert.InRange(CkksSerializer.Save(s.PublicKey).Length, limbs * n * 8, limbs * n * 8 + 200);
    }

    [Fact]
    public void ObjectsFromOtherParameters_AreRejectedByHash()
    {
        var other = CkksSetups.N8192.Value;
        var bytes = CkksSerializer.Save(other.Encrypt(other.RandomVector(1)));
        var ex = Assert.Throws<HeFormatException>(() => CkksSerializer.LoadCiphertext(S.Context, bytes));
        Assert.Contains("parameter hash", ex.Message);
    }

    [Fact]
    public void Residues_AtOrAboveTheirPrime_AreRejected()
    {
        var s = S;
        var bytes = CkksSerializer.Save(s.Encoder.Encode(s.RandomVector(2)));
        // header 4+2+1+32, level 4, scale 8 → first residue at 51.
        BitConverter.GetBytes(s.Context.Parameters.Primes[0]).CopyTo(bytes, 51);
        var ex = Assert.Throws<HeFormatException>(() => CkksSerializer.LoadPlaintext(s.Context, bytes));
        Assert.Contains("not below its prime", ex.Message);
    }

    public static TheoryData<string> Loaders => new() { "parameters", "secret", "public", "relin", "galois", "plaintext", "ciphertext", "seeded" };

    [Theory]
    [MemberData(nameof(Loaders))]
    public void Fuzz_RandomAndMutatedInput_OnlyThrowsHeFormatException(string loader)
    {
        var s = S;
        var ctx = s.Context;
        var (valid, load) = Sample(loader, s);
        load(valid); // the unmutated bytes load
        var rng = new Random(loader.GetHashCode(StringComparison.Ordinal) ^ 1234);
        var inputs = new List<byte[]>();
        for (var i = 0; i < 40; i++)
        {
            var random = new byte[rng.Next(0, 200)];
            rng.NextBytes(random);
            inputs.Add(random);
            inputs.Add([.. valid.AsSpan(0, 7), .. random]); // valid header start, garbage after
        }
        for (var i = 0; i < 60; i++)
        {
            var flipped = (byte[])valid.Clone();
            // Bias flips toward the header and size fields, where the checks are.
            var pos = i % 2 == 0 ? rng.Next(Math.Min(valid.Length, 96)) : rng.Next(valid.Length);
            flipped[pos] ^= (byte)(1 << rng.Next(8));
            inputs.Add(flipped);
            inputs.Add(valid.AsSpan(0, rng.Next(valid.Length)).ToArray()); // truncation
        }
        // Length and count fields set to extremes.
        foreach (var offset in new[] { 7, 39, 43, 47, 51 })
            foreach (var value in new[] { int.MaxValue, int.MinValue, -1, 0, 1, 3, 65, 1 << 20 })
            {
                if (offset + 4 > valid.Length) continue;
                var changed = (byte[])valid.Clone();
                BitConverter.GetBytes(value).CopyTo(changed, offset);
                inputs.Add(changed);
            }
        inputs.Add([.. valid, 0]); // trailing byte
        inputs.Add([]);
        foreach (var input in inputs)
        {
            try
            {
                load(input);
            }
            catch (HeFormatException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"{loader}: {ex.GetType().Name} escaped for a {input.Length}-byte input: {ex.Message}");
            }
        }
        _ = ctx;
    }

    private static (byte[] Valid, Action<byte[]> Load) Sample(string loader, CkksSetup s)
    {
        var ctx = s.Context;
        return loader switch
        {
            "parameters" => (CkksSerializer.Save(ctx.Parameters), b => CkksSerializer.LoadParameters(b)),
            "secret" => (CkksSerializer.Save(s.SecretKey), b => CkksSerializer.LoadSecretKey(ctx, b)),
            "public" => (CkksSerializer.Save(s.PublicKey), b => CkksSerializer.LoadPublicKey(ctx, b)),
            "relin" => (CkksSerializer.Save(s.RelinKey!), b => CkksSerializer.LoadRelinearizationKey(ctx, b)),
            "galois" => (CkksSerializer.Save(new KeyGenerator(ctx, s.SecretKey).CreateGaloisKeys([1, -1])), b => CkksSerializer.LoadGaloisKeys(ctx, b)),
            "plaintext" => (CkksSerializer.Save(s.Encoder.Encode(s.RandomVector(3))), b => CkksSerializer.LoadPlaintext(ctx, b)),
            "ciphertext" => (CkksSerializer.Save(s.Encrypt(s.RandomVector(4))), b => CkksSerializer.LoadCiphertext(ctx, b)),
            "seeded" => (CkksSerializer.Save(s.SymmetricEncryptor.Encrypt(s.Encoder.Encode(s.RandomVector(5)))), b => CkksSerializer.LoadCiphertext(ctx, b)),
            _ => throw new ArgumentOutOfRangeException(nameof(loader)),
        };
    }
}
