using Serverless.Model.Nn;

namespace Serverless.Model.Tests.Nn;

public sealed class MatMulTests
{
    private static double[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var a = new double[n];
        for (var i = 0; i < n; i++) a[i] = rng.NextDouble() * 2 - 1;
        return a;
    }

    // Sizes cross the panel boundary (panels hold 16 KB of rows: 2048 doubles) and SIMD widths.
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(3, 5, 7)]
    [InlineData(17, 33, 9)]
    [InlineData(5, 700, 40)]
    [InlineData(64, 3000, 3)]
    public void Blocked_products_match_the_naive_triple_loop(int m, int k, int n)
    {
        var a = Random(m * k, 1);
        var bt = Random(n * k, 2);
        var c = Random(m * n, 3);
        var expected = (double[])c.Clone();
        for (var i = 0; i < m; i++)
        for (var j = 0; j < n; j++)
        {
            double s = 0;
            for (var p = 0; p < k; p++) s += a[i * k + p] * bt[j * k + p];
            expected[i * n + j] += s;
        }
        MatMul<double>.MultiplyTransposedB(a, bt, c, m, k, n, accumulate: true);
        for (var i = 0; i < c.Length; i++) Assert.Equal(expected[i], c[i], 1e-9);

        // C[m,n] += A[m,k] B[k,n] with B = btᵀ laid out [k, n].
        var b = new double[k * n];
        for (var p = 0; p < k; p++) for (var j = 0; j < n; j++) b[p * n + j] = bt[j * k + p];
        var c2 = new double[m * n];
        MatMul<double>.MultiplyAccumulate(a, b, c2, m, k, n);
        for (var i = 0; i < m * n; i++) Assert.Equal(expected[i] - Random(m * n, 3)[i], c2[i], 1e-9);

        // C[k, n] += Aᵀ B with A [m, k] and B [m, n].
        var bb = Random(m * n, 4);
        var c3 = new double[k * n];
        MatMul<double>.TransposedAMultiplyAccumulate(a, bb, c3, m, k, n);
        for (var p = 0; p < k; p++)
        for (var j = 0; j < n; j++)
        {
            double s = 0;
            for (var i = 0; i < m; i++) s += a[i * k + p] * bb[i * n + j];
            Assert.Equal(s, c3[p * n + j], 1e-9);
        }
    }
}
