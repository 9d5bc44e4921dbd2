using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;

namespace Serverless.Model.Nn;

/// <summary>
/// Row-major matrix products on spans, blocked so that a panel of the right-hand matrix stays in L1 while
/// the rows of the left-hand one stream past. Inner products and row updates use TensorPrimitives
/// (SIMD). Summation order depends only on the shapes, so results are bit-for-bit reproducible.
/// </summary>
internal static class MatMul<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private const int L1Bytes = 32 * 1024;

    /// <summary>C[m,n] (+)= A[m,k] · B[n,k]ᵀ — the forward shape (x · Wᵀ).</summary>
    public static void MultiplyTransposedB(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int m, int k, int n, bool accumulate)
    {
        Debug.Assert(a.Length >= m * k && b.Length >= n * k && c.Length >= m * n);
        var block = PanelRows(k);
        for (var j0 = 0; j0 < n; j0 += block)
        {
            var j1 = Math.Min(n, j0 + block);
            for (var i = 0; i < m; i++)
            {
                var row = a.Slice(i * k, k);
                var crow = c.Slice(i * n, n);
                for (var j = j0; j < j1; j++)
                {
                    var dot = TensorPrimitives.Dot(row, b.Slice(j * k, k));
                    crow[j] = accumulate ? crow[j] + dot : dot;
                }
            }
        }
    }

    /// <summary>C[m,n] += A[m,k] · B[k,n] — the input-gradient shape (dY · W).</summary>
    public static void MultiplyAccumulate(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int m, int k, int n)
    {
        Debug.Assert(a.Length >= m * k && b.Length >= k * n && c.Length >= m * n);
        var block = PanelRows(n);
        for (var p0 = 0; p0 < k; p0 += block)
        {
            var p1 = Math.Min(k, p0 + block);
            for (var i = 0; i < m; i++)
            {
                var crow = c.Slice(i * n, n);
                for (var p = p0; p < p1; p++)
                {
                    var s = a[i * k + p];
                    if (s == T.Zero) continue;
                    TensorPrimitives.MultiplyAdd(b.Slice(p * n, n), s, crow, crow);
                }
            }
        }
    }

    /// <summary>C[m,n] += A[k,m]ᵀ · B[k,n] — the weight-gradient shape (dYᵀ · X).</summary>
    public static void TransposedAMultiplyAccumulate(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> c, int k, int m, int n)
    {
        Debug.Assert(a.Length >= k * m && b.Length >= k * n && c.Length >= m * n);
        var block = PanelRows(n);
        for (var i0 = 0; i0 < m; i0 += block)
        {
            var i1 = Math.Min(m, i0 + block);
            for (var p = 0; p < k; p++)
            {
                var brow = b.Slice(p * n, n);
                for (var i = i0; i < i1; i++)
                {
                    var s = a[p * m + i];
                    if (s == T.Zero) continue;
                    var crow = c.Slice(i * n, n);
                    TensorPrimitives.MultiplyAdd(brow, s, crow, crow);
                }
            }
        }
    }

    /// <summary>Adds <paramref name="bias"/> to every row of <paramref name="c"/>[rows, bias.Length].</summary>
    public static void AddRowVector(Span<T> c, ReadOnlySpan<T> bias, int rows)
    {
        var n = bias.Length;
        for (var i = 0; i < rows; i++)
        {
            var row = c.Slice(i * n, n);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>db[n] += column sums of dY[rows, n], rows in order.</summary>
    public static void AccumulateColumnSums(ReadOnlySpan<T> dy, Span<T> db, int rows)
    {
        var n = db.Length;
        for (var i = 0; i < rows; i++) TensorPrimitives.Add(db, dy.Slice(i * n, n), db);
    }

    private static int PanelRows(int rowLength)
    {
        var bytes = Math.Max(1, rowLength) * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        return Math.Max(4, L1Bytes / 2 / bytes);
    }
}
