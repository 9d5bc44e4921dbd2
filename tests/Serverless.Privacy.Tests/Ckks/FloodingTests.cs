using Serverless.Privacy.Arithmetic;
using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Tests.Ckks;

/// <summary>Evaluator-side noise flooding (<see cref="Evaluator.FloodNoiseInPlace"/>).</summary>
public sealed class FloodingTests
{
    /// <summary>b = log2 Δ − 20 = 20 at Δ = 2^40: slot error σ ≈ 2^20·sqrt(8192/3)/2^40 ≈ 5e-5, the max over 4096 slots well under 1e-3.</summary>
    private const int FloodingBits = 20;

    [Fact]
    public void A_flooded_ciphertext_decrypts_within_1e_3_and_differs_from_the_unflooded_one()
    {
        var s = CkksSetups.N8192.Value;
        var values = s.RandomVector(7);
        var ct = s.Encrypt(values);
        var before = s.Decrypt(ct);
        s.Evaluator.FloodNoiseInPlace(ct, FloodingBits);
        var after = s.Decrypt(ct);
        var err = CkksSetup.MaxError(values, after);
        Assert.True(err < 1e-3, $"error {err}");
        Assert.True(CkksSetup.MaxError(before, after) > 1e-7, "flooding changed nothing");
    }

    /// <summary>
    /// Two ciphertexts of the same values with different noise (a fresh encryption, and one that also
    /// absorbed 63 encryptions of zero: 8 × the noise, as a deeper circuit would leave). Their
    /// low-order noise (decryption minus the exact encoding, coefficient by coefficient, mod q_0,
    /// before decoding) is compared with a two-sample Kolmogorov–Smirnov test over the 8192
    /// coefficients. Threshold: the KS critical value at α = 10^-6, c(α)·sqrt((n+m)/(n·m)) with
    /// c(α) = sqrt(−ln(α/2)/2) = 2.69, i.e. 0.042 (the encryption and flooding randomness come from
    /// RandomNumberGenerator, so a false failure has probability about 10^-6). Unflooded, the test
    /// must tell them apart (it has power); flooded, it must not.
    /// </summary>
    [Fact]
    public void Flooded_results_of_equal_values_are_indistinguishable_in_their_low_order_noise()
    {
        var s = CkksSetups.N8192.Value;
        var values = s.RandomVector(11);
        var fresh = s.Encrypt(values);
        var noisy = s.Encrypt(values);
        var zero = new double[values.Length];
        for (var i = 0; i < 63; i++) s.Evaluator.AddInPlace(noisy, s.Encrypt(zero));
        // The sum of 64 encryptions of values and zeros still encrypts values (zeros add nothing).
        var threshold = Math.Sqrt(-Math.Log(1e-6 / 2) / 2) * Math.Sqrt(2.0 / s.Context.N);

        var unflooded = KolmogorovSmirnov(LowOrderNoise(s, fresh, values), LowOrderNoise(s, noisy, values));
        Assert.True(unflooded > threshold, $"without flooding the noise should differ: D = {unflooded:0.0000}, threshold {threshold:0.0000}");

        s.Evaluator.FloodNoiseInPlace(fresh, FloodingBits);
        s.Evaluator.FloodNoiseInPlace(noisy, FloodingBits);
        var flooded = KolmogorovSmirnov(LowOrderNoise(s, fresh, values), LowOrderNoise(s, noisy, values));
        Assert.True(flooded < threshold, $"flooded noise distributions differ: D = {flooded:0.0000}, threshold {threshold:0.0000}");
    }

    [Fact]
    public void Flooding_refuses_out_of_range_bits()
    {
        var s = CkksSetups.N8192.Value;
        var ct = s.Encrypt(s.RandomVector(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Evaluator.FloodNoiseInPlace(ct, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Evaluator.FloodNoiseInPlace(ct, 61));
    }

    /// <summary>Decryption minus the exact encoding of <paramref name="values"/>, limb q_0, as centered integers (coefficient domain).</summary>
    private static double[] LowOrderNoise(CkksSetup s, Ciphertext ct, double[] values)
    {
        var ctx = s.Context;
        var n = ctx.N;
        var decrypted = s.Decryptor.Decrypt(ct);
        var exact = new Plaintext(ctx);
        s.Encoder.Encode(values, ct.Scale, ct.Level, exact);
        var q = ctx.Moduli[0].Value;
        var diff = new ulong[n];
        LimbOps.Sub(decrypted.Limb(0), exact.Limb(0), diff, q);
        ctx.Ntt[0].Inverse(diff);
        return diff.Select(v => v > q / 2 ? -(double)(q - v) : v).ToArray();
    }

    private static double KolmogorovSmirnov(double[] a, double[] b)
    {
        var x = a.Order().ToArray();
        var y = b.Order().ToArray();
        int i = 0, j = 0;
        var d = 0.0;
        while (i < x.Length && j < y.Length)
        {
            var v = Math.Min(x[i], y[j]);
            while (i < x.Length && x[i] <= v) i++;
            while (j < y.Length && y[j] <= v) j++;
            d = Math.Max(d, Math.Abs((double)i / x.Length - (double)j / y.Length));
        }
        return d;
    }
}
