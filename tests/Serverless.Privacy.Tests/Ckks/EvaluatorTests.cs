using System.Numerics;
using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Tests.Ckks;

/// <summary>
/// Error bounds, all for inputs in [−1, 1]: at Δ = 2^40 (N=8192 default) additions of fresh ciphertexts and one
/// multiply + relinearize + rescale stay below 1e-6 (fresh noise is ~2^-23 per slot), rotations below 1e-5;
/// at Δ = 2^31 (N=4096, the 109-bit toy set) rotations and conjugation stay below 1e-3; at Δ = 2^34 (N8192Deep) a degree-7 polynomial and
/// other depth-3..4 circuits stay below 1e-3 (relative to coefficient magnitudes ~1).
/// </summary>
public sealed class EvaluatorTests
{
    private static CkksSetup S => CkksSetups.N8192.Value;

    [Fact]
    public void Add_Sub_Negate_CiphertextPlaintextScalar()
    {
        var s = S;
        var a = s.RandomVector(1);
        var b = s.RandomVector(2);
        var ca = s.Encrypt(a);
        var cb = s.Encrypt(b);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.Add(ca, cb, dst);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x + y).ToArray(), s.Decrypt(dst)) < 1e-6);
        s.Evaluator.Sub(ca, cb, dst);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x - y).ToArray(), s.Decrypt(dst)) < 1e-6);

        var pb = s.Encoder.Encode(b);
        s.Evaluator.AddPlain(ca, pb, dst);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x + y).ToArray(), s.Decrypt(dst)) < 1e-6);
        s.Evaluator.SubPlain(ca, pb, dst);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x - y).ToArray(), s.Decrypt(dst)) < 1e-6);

        s.Evaluator.AddScalar(ca, 0.625, dst);
        Assert.True(CkksSetup.MaxError(a.Select(x => x + 0.625).ToArray(), s.Decrypt(dst)) < 1e-6);
        s.Evaluator.Negate(ca, dst);
        Assert.True(CkksSetup.MaxError(a.Select(x => -x).ToArray(), s.Decrypt(dst)) < 1e-6);

        // In place.
        var c = ca.Clone();
        s.Evaluator.AddInPlace(c, cb);
        s.Evaluator.SubScalarInPlace(c, 1.5);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x + y - 1.5).ToArray(), s.Decrypt(c)) < 1e-6);
    }

    [Fact]
    public void Multiply_Relinearize_Rescale_WithinBound()
    {
        var s = S;
        var a = s.RandomVector(3);
        var b = s.RandomVector(4);
        var ca = s.Encrypt(a);
        var cb = s.Encrypt(b);
        var prod = new Ciphertext(s.Context);
        s.Evaluator.Multiply(ca, cb, prod);
        Assert.Equal(3, prod.Size);
        // A size-3 ciphertext decrypts too (with s²).
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x * y).ToArray(), s.Decrypt(prod)) < 1e-6);
        s.Evaluator.RelinearizeInPlace(prod);
        Assert.Equal(2, prod.Size);
        s.Evaluator.RescaleInPlace(prod);
        Assert.Equal(s.Context.MaxLevel - 1, prod.Level);
        Assert.Equal(s.Context.ScaleAt(prod.Level), prod.Scale);
        var err = CkksSetup.MaxError(a.Zip(b, (x, y) => x * y).ToArray(), s.Decrypt(prod));
        Assert.True(err < 1e-6, $"error {err}");

        var sq = ca.Clone();
        s.Evaluator.SquareInPlace(sq);
        s.Evaluator.RelinearizeInPlace(sq);
        s.Evaluator.RescaleInPlace(sq);
        Assert.True(CkksSetup.MaxError(a.Select(x => x * x).ToArray(), s.Decrypt(sq)) < 1e-6);

        // Results of the same level and standard scale add without ceremony.
        s.Evaluator.AddInPlace(sq, prod);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x * x + x * y).ToArray(), s.Decrypt(sq)) < 1e-6);
    }

    [Fact]
    public void MultiplyPlain_And_MultiplyScalar_LandOnStandardScale()
    {
        var s = S;
        var a = s.RandomVector(5);
        var b = s.RandomVector(6);
        var ca = s.Encrypt(a);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.MultiplyPlain(ca, s.Encoder.Encode(b), dst);
        s.Evaluator.RescaleInPlace(dst);
        Assert.True(CkksSetup.MaxError(a.Zip(b, (x, y) => x * y).ToArray(), s.Decrypt(dst)) < 1e-6);

        s.Evaluator.MultiplyScalar(ca, -2.75, dst);
        s.Evaluator.RescaleInPlace(dst);
        Assert.Equal(s.Context.ScaleAt(dst.Level), dst.Scale);
        Assert.True(CkksSetup.MaxError(a.Select(x => -2.75 * x).ToArray(), s.Decrypt(dst)) < 1e-6);
    }

    [Fact]
    public void LinearCombination_MatchesThePlainSum_OneLevelDown_AtTheStandardScale_Seeded()
    {
        var s = S;
        var rng = new Random(41);
        const int terms = 24;
        var xs = new double[terms][];
        var cts = new List<Ciphertext>(terms);
        var weights = new double[terms];
        for (var j = 0; j < terms; j++)
        {
            xs[j] = s.RandomVector(100 + j);
            cts.Add(s.Encrypt(xs[j]));
            // Every fourth weight is zero: skipped, and must not change the sum.
            weights[j] = j % 4 == 3 ? 0 : rng.NextDouble() * 2 - 1;
        }
        const double bias = -0.3125;
        var dst = new Ciphertext(s.Context);
        s.Evaluator.LinearCombination(cts, weights, bias, dst);

        var expected = new double[xs[0].Length];
        for (var i = 0; i < expected.Length; i++)
        {
            expected[i] = bias;
            for (var j = 0; j < terms; j++) expected[i] += weights[j] * xs[j][i];
        }
        Assert.Equal(s.Context.MaxLevel - 1, dst.Level);
        Assert.Equal(s.Context.ScaleAt(dst.Level), dst.Scale);
        var err = CkksSetup.MaxError(expected, s.Decrypt(dst));
        Assert.True(err < 1e-5, $"error {err}");

        // The result meets a product of the same inputs at the same level and scale.
        var sq = new Ciphertext(s.Context);
        s.Evaluator.MultiplyRelinearizeRescale(cts[0], cts[0], sq);
        s.Evaluator.AddInPlace(sq, dst);
        Assert.True(CkksSetup.MaxError(expected.Select((e, i) => e + xs[0][i] * xs[0][i]).ToArray(), s.Decrypt(sq)) < 1e-5);
    }

    [Fact]
    public void LinearCombination_RefusesMismatchedInputs_AndSaysWhy()
    {
        var s = S;
        var a = s.Encrypt(s.RandomVector(8));
        var b = s.Encrypt(s.RandomVector(9));
        var dst = new Ciphertext(s.Context);
        var ev = s.Evaluator;

        var ex = Assert.Throws<ArgumentException>(() => ev.LinearCombination([a, b], [1.0], 0, dst));
        Assert.Contains("2 inputs and 1 weights", ex.Message);
        Assert.Throws<ArgumentException>(() => ev.LinearCombination([], [], 0, dst));
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => ev.LinearCombination([a, b], [1.0, double.NaN], 0, dst)).Message);
        Assert.Contains("destination is also input 1", Assert.Throws<ArgumentException>(() => ev.LinearCombination([a, b], [1.0, 2.0], 0, b)).Message);

        var down = new Ciphertext(s.Context);
        ev.MultiplyRelinearizeRescale(a, a, down);
        Assert.Contains("operands at levels", Assert.Throws<ArgumentException>(() => ev.LinearCombination([a, down], [1.0, 1.0], 0, dst)).Message);

        var unrelinearized = new Ciphertext(s.Context);
        ev.Multiply(a, b, unrelinearized);
        Assert.Contains("relinearize it first", Assert.Throws<ArgumentException>(() => ev.LinearCombination([unrelinearized], [1.0], 0, dst)).Message);

        var bottom = a.Clone();
        ev.ModSwitchTo(bottom, 0, bottom);
        Assert.Throws<InvalidOperationException>(() => ev.LinearCombination([bottom], [1.0], 0, dst));
    }

    [Fact]
    public void ModSwitchTo_LetsFreshAndMultipliedOperandsMeet()
    {
        var s = S;
        var a = s.RandomVector(7);
        var ca = s.Encrypt(a);
        var sq = new Ciphertext(s.Context);
        s.Evaluator.MultiplyRelinearizeRescale(ca, ca, sq);
        var ex = Assert.Throws<ArgumentException>(() => s.Evaluator.Add(ca, sq, new Ciphertext(s.Context)));
        Assert.Contains($"operands at levels {s.Context.MaxLevel} and {s.Context.MaxLevel - 1}", ex.Message);
        Assert.Contains($"ModSwitchTo(the first operand, {s.Context.MaxLevel - 1})", ex.Message);
        var down = new Ciphertext(s.Context);
        s.Evaluator.ModSwitchTo(ca, sq.Level, down);
        Assert.Equal(sq.Level, down.Level);
        s.Evaluator.AddInPlace(down, sq);
        Assert.True(CkksSetup.MaxError(a.Select(x => x + x * x).ToArray(), s.Decrypt(down)) < 1e-6);
    }

    [Fact]
    public void Mismatches_ExplainWhatToDo()
    {
        var s = S;
        var ca = s.Encrypt(s.RandomVector(8));
        var pt = new Plaintext(s.Context);
        s.Encoder.Encode(s.RandomVector(9), Math.Pow(2, 30), s.Context.MaxLevel, pt);
        var ex = Assert.Throws<ArgumentException>(() => s.Evaluator.AddPlain(ca, pt, new Ciphertext(s.Context)));
        Assert.Contains("scales", ex.Message);
        Assert.Contains("encode plaintexts at the ciphertext's Scale", ex.Message);
        s.Encoder.Encode(s.RandomVector(9), ca.Scale, 0, pt);
        ex = Assert.Throws<ArgumentException>(() => s.Evaluator.MultiplyPlain(ca, pt, new Ciphertext(s.Context)));
        Assert.Contains($"encode the plaintext at level {ca.Level}", ex.Message);
        var other = CkksSetups.N4096.Value;
        Assert.Throws<ArgumentException>(() => s.Evaluator.Add(ca, other.Encrypt(other.RandomVector(1)), ca));
        var prod = new Ciphertext(s.Context);
        s.Evaluator.Multiply(ca, ca, prod);
        ex = Assert.Throws<ArgumentException>(() => s.Evaluator.Multiply(prod, ca, prod));
        Assert.Contains("Relinearize", ex.Message);
        Assert.Throws<InvalidOperationException>(() => new Evaluator(s.Context).Relinearize(prod, prod));
    }

    [Fact]
    public void DepthExhaustion_IsAClearError()
    {
        var s = S;
        var c = s.Encrypt(s.RandomVector(10));
        for (var i = 0; i < s.Context.MaxLevel; i++) s.Evaluator.MultiplyRelinearizeRescale(c, c, c);
        Assert.Equal(0, c.Level);
        var ex = Assert.Throws<InvalidOperationException>(() => s.Evaluator.MultiplyRelinearizeRescale(c, c, c));
        Assert.Contains("level 0", ex.Message);
        Assert.Contains("exhausted", ex.Message);
        var poly = Assert.Throws<InvalidOperationException>(() =>
            s.Evaluator.EvaluatePolynomial(s.Encrypt(s.RandomVector(11)), [1, 1, 1, 1, 1, 1, 1, 1], new Ciphertext(s.Context)));
        Assert.Contains("needs 3 levels", poly.Message);
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(8192)]
    public void Rotate_ByEveryPowerOfTwoStep_AndComposedSteps(int n)
    {
        var s = CkksSetups.ForN(n);
        var slots = s.Context.Slots;
        var a = s.RandomVector(n);
        var ca = s.Encrypt(a);
        var dst = new Ciphertext(s.Context);
        var steps = new List<int>();
        for (var k = 1; k < slots; k <<= 1) { steps.Add(k); steps.Add(-k); }
        steps.AddRange([3, 7, 13, -5, 100, slots - 1, 1000 % slots]);
        foreach (var step in steps)
        {
            s.Evaluator.Rotate(ca, step, dst);
            var expected = new double[slots];
            for (var i = 0; i < slots; i++) expected[i] = a[((i + step) % slots + slots) % slots];
            var err = CkksSetup.MaxError(expected, s.Decrypt(dst));
            Assert.True(err < (n == 4096 ? 1e-3 : 1e-5), $"step {step}: error {err}");
        }
    }

    [Fact]
    public void Rotate_WithoutUsableKeys_SaysWhichKeysToCreate()
    {
        var s = CkksSetups.N16384.Value; // only step 1
        var ct = s.Encrypt(s.RandomVector(3));
        var ex = Assert.Throws<InvalidOperationException>(() => s.Evaluator.Rotate(ct, 2, new Ciphertext(s.Context)));
        Assert.Contains("CreateGaloisKeys", ex.Message);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.Rotate(ct, 1, dst); // the key that exists works at N=16384 too
        var a = s.RandomVector(3);
        Assert.True(Math.Abs(s.Decrypt(dst)[0] - a[1]) < 1e-6);
    }

    [Fact]
    public void Conjugate_ConjugatesComplexSlots()
    {
        var s = CkksSetups.N4096.Value;
        var rng = new Random(3);
        var values = new Complex[s.Context.Slots];
        for (var i = 0; i < values.Length; i++) values[i] = new Complex(rng.NextDouble() - 0.5, rng.NextDouble() - 0.5);
        var pt = new Plaintext(s.Context);
        s.Encoder.Encode(values, s.Context.Parameters.Scale, s.Context.MaxLevel, pt);
        var ct = s.Encryptor.Encrypt(pt);
        s.Evaluator.ConjugateInPlace(ct);
        var result = s.DecryptComplex(ct);
        for (var i = 0; i < values.Length; i++) Assert.True((Complex.Conjugate(values[i]) - result[i]).Magnitude < 1e-3, $"slot {i}: {result[i]} vs {values[i]}");
    }

    [Fact]
    public void SumSlots_And_InnerProduct()
    {
        var s = S;
        var a = s.RandomVector(12);
        var b = s.RandomVector(13);
        var ca = s.Encrypt(a);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.SumSlots(ca, dst);
        var sum = a.Sum();
        var decrypted = s.Decrypt(dst);
        Assert.True(Math.Abs(decrypted[0] - sum) < 1e-4 && Math.Abs(decrypted[1234] - sum) < 1e-4, $"{decrypted[0]} vs {sum}");
        s.Evaluator.InnerProduct(ca, s.Encrypt(b), dst);
        var dot = a.Zip(b, (x, y) => x * y).Sum();
        Assert.True(Math.Abs(s.Decrypt(dst)[7] - dot) < 1e-3, $"{s.Decrypt(dst)[7]} vs {dot}");
    }

    [Fact]
    public void EvaluatePolynomial_Degree7_WithMinimalDepth()
    {
        var s = CkksSetups.N8192Deep.Value;
        double[] coeffs = [0.5, 0.197, 0, -0.004, 0.1, 0.02, -0.3, 0.25];
        var a = s.RandomVector(14);
        var ct = s.Encrypt(a);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.EvaluatePolynomial(ct, coeffs, dst);
        Assert.Equal(s.Context.MaxLevel - 3, dst.Level); // depth ceil(log2 8) = 3
        var expected = a.Select(x => coeffs.Select((c, i) => c * Math.Pow(x, i)).Sum()).ToArray();
        var err = CkksSetup.MaxError(expected, s.Decrypt(dst));
        Assert.True(err < 1e-3, $"error {err}");
    }

    [Theory]
    [InlineData(new double[] { 0.5, 1 })]
    [InlineData(new double[] { 0, 0, 1 })]
    [InlineData(new double[] { 0.1, -0.2, 0.3, 0.4, -0.5, 0.6, -0.7, 0.8, 0.9, 0.25, -0.125, 0.1, 0.05, 0.3, -0.2 })]
    public void EvaluatePolynomial_OtherDegrees(double[] coeffs)
    {
        var s = CkksSetups.N8192Deep.Value;
        var a = s.RandomVector(15);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.EvaluatePolynomial(s.Encrypt(a), coeffs, dst);
        var depth = (int)Math.Ceiling(Math.Log2(coeffs.Length));
        Assert.Equal(s.Context.MaxLevel - depth, dst.Level);
        var expected = a.Select(x => coeffs.Select((c, i) => c * Math.Pow(x, i)).Sum()).ToArray();
        var err = CkksSetup.MaxError(expected, s.Decrypt(dst));
        Assert.True(err < 1e-3, $"error {err}");
    }

    [Fact]
    public void MultiplyMatrix_64x64_DiagonalMethodWithBsgs()
    {
        var s = CkksSetups.N8192.Value;
        const int d = 64;
        var rng = new Random(64);
        var m = new double[d, d];
        for (var i = 0; i < d; i++)
            for (var j = 0; j < d; j++) m[i, j] = rng.NextDouble() * 2 - 1;
        var v = s.RandomVector(65, d);
        var replicated = new double[s.Context.Slots];
        for (var t = 0; t < replicated.Length; t++) replicated[t] = v[t % d];
        var ct = s.Encrypt(replicated);
        var dst = new Ciphertext(s.Context);
        s.Evaluator.MultiplyMatrix(m, ct, dst);
        var result = s.Decrypt(dst);
        for (var i = 0; i < d; i++)
        {
            var expected = 0.0;
            for (var j = 0; j < d; j++) expected += m[i, j] * v[j];
            Assert.True(Math.Abs(expected - result[i]) < 1e-4, $"row {i}: {result[i]} vs {expected}");
            Assert.True(Math.Abs(expected - result[i + d * 5]) < 1e-4, "result is replicated");
        }
    }
}
