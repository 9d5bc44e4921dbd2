using System.Numerics;
using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Tests.Ckks;

public sealed class EncoderTests
{
    // The fast encode (1/size folded into the scale, one signed conversion, branchless or
    // reduction-free limbs) must equal the straightforward algorithm coefficient for coefficient:
    // normalized inverse FFT, round(x·Δ) per coefficient, per-limb residue of each double, NTT.
    // Magnitudes cover every path: below every modulus, above the 40-bit limbs (Barrett per limb),
    // and beyond 2^63 (the BigInteger fallback).
    [Theory]
    [InlineData(4096, 31, 1.0)]
    [InlineData(8192, 40, 1.0)]
    [InlineData(8192, 40, 300.0)]
    [InlineData(8192, 62, 20.0)]
    [InlineData(8192, 80, 1.0)]
    [InlineData(16384, 40, 1.0)]
    public void Encode_EqualsReferenceAlgorithm_CoefficientForCoefficient(int n, int logScale, double magnitude)
    {
        var s = CkksSetups.ForN(n);
        var context = s.Context;
        var scale = Math.Pow(2, logScale);
        var rng = new Random(n + logScale);
        var values = new Complex[context.Slots];
        for (var i = 0; i < values.Length; i++)
            values[i] = new Complex((rng.NextDouble() * 2 - 1) * magnitude, (rng.NextDouble() * 2 - 1) * magnitude);

        var actual = new Plaintext(context);
        s.Encoder.Encode(values, scale, context.MaxLevel, actual);

        var expected = ReferenceEncode(s, values, scale, context.MaxLevel);
        Assert.Equal(scale, actual.Scale);
        Assert.Equal(expected.Length, actual.Poly.Length);
        for (var k = 0; k < expected.Length; k++)
            Assert.True(expected[k] == actual.Poly[k], $"word {k}: {expected[k]} vs {actual.Poly[k]}");
    }

    [Fact]
    public void Encode_LowerLevelAndRealValues_EqualReferenceAlgorithm()
    {
        var s = CkksSetups.N8192.Value;
        var context = s.Context;
        var reals = s.RandomVector(7, context.Slots / 3);
        var values = new Complex[context.Slots];
        for (var i = 0; i < reals.Length; i++) values[i] = reals[i];
        var actual = new Plaintext(context);
        s.Encoder.Encode(reals, context.Parameters.Scale, 1, actual);
        Assert.Equal(1, actual.Level);
        Assert.Equal(ReferenceEncode(s, values, context.Parameters.Scale, 1), actual.Poly.ToArray());
    }

    [Fact]
    public void Encode_ValueBeyondModulus_Throws()
    {
        var s = CkksSetups.N8192.Value;
        var values = new double[s.Context.Slots];
        values[3] = Math.Pow(2, 100);
        var ex = Assert.Throws<ArgumentException>(() => s.Encoder.Encode(values, s.Context.Parameters.Scale, 0, new Plaintext(s.Context)));
        Assert.Contains("exceeds the modulus", ex.Message, StringComparison.Ordinal);
    }

    // Decode's lift (Garner digits + Horner in double) against the exact BigInteger CRT: edge
    // values around 0 and ±Q/2 and random integers of every size, relative error below 1e-14.
    [Theory]
    [InlineData(8192, 1)]
    [InlineData(8192, 2)]
    [InlineData(16384, 6)]
    public void MixedRadixLift_MatchesBigIntegerCrt(int n, int level)
    {
        var context = CkksSetups.ForN(n).Context;
        var lift = new MixedRadixLift(context.Moduli, level);
        var q = BigInteger.One;
        for (var i = 0; i <= level; i++) q *= context.Moduli[i].Value;
        var half = q >> 1;
        var rng = new Random(level);
        var cases = new List<BigInteger> { 0, 1, -1, half, -half, half - 1, -(half - 1), 1L << 40, -(1L << 40), long.MaxValue, long.MinValue };
        for (var t = 0; t < 400; t++)
        {
            var bytes = new byte[rng.Next(1, (int)(q.GetBitLength() / 8))];
            rng.NextBytes(bytes);
            var x = new BigInteger(bytes, isUnsigned: true) % half;
            cases.Add(rng.Next(2) == 0 ? x : -x);
        }
        var residues = new ulong[level + 1];
        var digits = new ulong[level + 1];
        foreach (var x in cases)
        {
            for (var i = 0; i <= level; i++)
            {
                var r = x % context.Moduli[i].Value;
                residues[i] = (ulong)(r.Sign < 0 ? r + context.Moduli[i].Value : r);
            }
            var expected = (double)x;
            var actual = lift.Lift(residues, 1, 0, digits);
            Assert.True(Math.Abs(actual - expected) <= Math.Abs(expected) * 1e-14, $"{x}: {actual} vs {expected}");
        }
    }

    private static ulong[] ReferenceEncode(CkksSetup s, Complex[] values, double scale, int level)
    {
        var context = s.Context;
        var n = context.N;
        var half = context.Slots;
        var slots = (Complex[])values.Clone();
        ReferenceFftInverse(context, slots);
        var coeffs = new double[n];
        for (var i = 0; i < half; i++)
        {
            coeffs[i] = Math.Round(slots[i].Real * scale);
            coeffs[i + half] = Math.Round(slots[i].Imaginary * scale);
        }
        var result = new ulong[(level + 1) * n];
        for (var limb = 0; limb <= level; limb++)
        {
            var q = context.Moduli[limb].Value;
            var span = result.AsSpan(limb * n, n);
            for (var k = 0; k < n; k++)
            {
                var r = new BigInteger(coeffs[k]) % q;
                span[k] = (ulong)(r.Sign < 0 ? r + q : r);
            }
            context.Ntt[limb].Forward(span);
        }
        return result;
    }

    // The inverse special FFT as first written (slices per group, conjugate per butterfly,
    // normalized by 1/size), kept here so the encoder's loops can change without moving the target.
    private static void ReferenceFftInverse(CkksContext context, Complex[] vals)
    {
        var size = vals.Length;
        for (var len = size; len >= 2; len >>= 1)
        {
            var lenh = len >> 1;
            var tw = context.FftTwiddles[BitOperations.Log2((uint)len)];
            for (var i = 0; i < size; i += len)
            {
                for (var j = 0; j < lenh; j++)
                {
                    var u = vals[i + j] + vals[i + lenh + j];
                    var v = (vals[i + j] - vals[i + lenh + j]) * Complex.Conjugate(tw[j]);
                    vals[i + j] = u;
                    vals[i + lenh + j] = v;
                }
            }
        }
        var bits = BitOperations.Log2((uint)size);
        for (var i = 0; i < size; i++)
        {
            var r = 0;
            for (var b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
            if (i < r) (vals[i], vals[r]) = (vals[r], vals[i]);
        }
        for (var i = 0; i < size; i++) vals[i] *= 1.0 / size;
    }
}
