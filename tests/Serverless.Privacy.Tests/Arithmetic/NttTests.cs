using Serverless.Privacy.Arithmetic;

namespace Serverless.Privacy.Tests.Arithmetic;

public sealed class NttTests
{
    [Theory]
    [InlineData(16, 30)]
    [InlineData(1024, 50)]
    [InlineData(4096, 60)]
    public void ForwardThenInverse_IsIdentity(int n, int bits)
    {
        var q = Primes.NttFriendly(bits, 1, n, [])[0];
        var ntt = new NttTables(new Modulus(q), n);
        var rng = new Random(n);
        var a = new ulong[n];
        for (var i = 0; i < n; i++) a[i] = (ulong)rng.NextInt64((long)q);
        var copy = (ulong[])a.Clone();
        ntt.Forward(a);
        Assert.NotEqual(copy, a);
        Assert.All(a, x => Assert.True(x < q));
        ntt.Inverse(a);
        Assert.Equal(copy, a);
    }

    [Theory]
    [InlineData(8, 20)]
    [InlineData(256, 59)]
    [InlineData(1024, 40)]
    public void PointwiseProduct_EqualsSchoolbookNegacyclicConvolution(int n, int bits)
    {
        var q = Primes.NttFriendly(bits, 1, n, [])[0];
        var m = new Modulus(q);
        var ntt = new NttTables(m, n);
        var rng = new Random(bits);
        var a = new ulong[n];
        var b = new ulong[n];
        for (var i = 0; i < n; i++) { a[i] = (ulong)rng.NextInt64((long)q); b[i] = (ulong)rng.NextInt64((long)q); }
        var expected = new ulong[n];
        for (var i = 0; i < n; i++)
            for (var j = 0; j < n; j++)
            {
                var p = m.Mul(a[i], b[j]);
                var k = i + j;
                if (k < n) expected[k] = m.Add(expected[k], p);
                else expected[k - n] = m.Sub(expected[k - n], p); // X^N = −1
            }
        ntt.Forward(a);
        ntt.Forward(b);
        var c = new ulong[n];
        LimbOps.Mul(a, b, c, m);
        ntt.Inverse(c);
        Assert.Equal(expected, c);
    }

    [Fact]
    public void Forward_OfMonomialX_IsTheOddPowersOfTheRoot()
    {
        // NTT(X)[i] = ψ^(2·bitrev(i)+1): the evaluation points the Galois permutations rely on.
        const int n = 64;
        var q = Primes.NttFriendly(30, 1, n, [])[0];
        var m = new Modulus(q);
        var ntt = new NttTables(m, n);
        var a = new ulong[n];
        a[1] = 1;
        ntt.Forward(a);
        for (var i = 0; i < n; i++)
            Assert.Equal(m.Pow(ntt.Root, (ulong)(2 * NttTables.BitReverse(i, 6) + 1)), a[i]);
        Assert.Equal(q - 1, m.Pow(ntt.Root, n));
    }
}

public sealed class ModulusTests
{
    [Theory]
    [InlineData(0x1FFFFFFFFFFFFFFFUL)]
    [InlineData(1152921504606584833UL)]
    [InlineData(65537UL)]
    public void BarrettAndShoup_MatchBigIntegerArithmetic(ulong q)
    {
        var m = new Modulus(q);
        var rng = new Random(7);
        for (var t = 0; t < 2000; t++)
        {
            var a = (ulong)rng.NextInt64() % q;
            var b = (ulong)rng.NextInt64() % q;
            var expected = (ulong)((UInt128)a * b % q);
            Assert.Equal(expected, m.Mul(a, b));
            Assert.Equal(expected, Modulus.MulShoup(a, b, m.ShoupOf(b), q));
            var hi = (ulong)rng.NextInt64();
            var lo = (ulong)rng.NextInt64();
            Assert.Equal((ulong)((((UInt128)hi << 64) | lo) % q), m.Reduce(hi, lo));
        }
        Assert.Equal((ulong)((UInt128)ulong.MaxValue * ulong.MaxValue % q), m.Reduce(ulong.MaxValue - 1, 1));
        if (Primes.IsPrime(q)) Assert.Equal(1UL, m.Mul(7 % q, m.Inverse(7)));
        Assert.Equal(q - 5, m.FromSigned(-5));
        var expectedMin = (ulong)(((System.Numerics.BigInteger)long.MinValue % q + q) % q);
        Assert.Equal(expectedMin, m.FromSigned(long.MinValue));
    }

    [Fact]
    public void Primes_AreDeterministicPrimeAndNttFriendly()
    {
        var first = Primes.NttFriendly(40, 3, 8192, []);
        var second = Primes.NttFriendly(40, 3, 8192, []);
        Assert.Equal(first, second);
        Assert.Equal(3, first.Distinct().Count());
        foreach (var p in first)
        {
            Assert.True(Primes.IsPrime(p));
            Assert.Equal(1UL, p % (2 * 8192));
            Assert.Equal(40, 64 - System.Numerics.BitOperations.LeadingZeroCount(p));
        }
        Assert.False(Primes.IsPrime(3215031751UL)); // strong pseudoprime to bases 2, 3, 5, 7
        Assert.True(Primes.IsPrime(18446744073709551557UL)); // largest 64-bit prime
    }
}
