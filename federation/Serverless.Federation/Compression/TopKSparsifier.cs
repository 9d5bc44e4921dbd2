namespace Serverless.Federation.Compression;

/// <summary>A sparse vector: the kept indices (ascending) and their values.</summary>
public sealed record SparseVector(int Length, int[] Indices, float[] Values)
{
    /// <summary>Writes the dense form.</summary>
    /// <exception cref="ArgumentException">indices out of range, not ascending, or counts disagree.</exception>
    public void ToDense(Span<float> destination)
    {
        if (destination.Length != Length) throw new ArgumentException("Destination length differs.", nameof(destination));
        if (Indices is null || Values is null || Indices.Length != Values.Length) throw new ArgumentException("Indices and values differ in count.");
        destination.Clear();
        var last = -1;
        for (var k = 0; k < Indices.Length; k++)
        {
            var i = Indices[k];
            if (i <= last || i >= Length) throw new ArgumentException($"Index {i} is out of range or not ascending.");
            destination[i] = Values[k];
            last = i;
        }
    }
}

/// <summary>
/// Top-k sparsification with error feedback (Stich et al. 2018; Karimireddy et al. 2019): the
/// client adds the residual it did not send last round to this round's update, sends the k
/// largest-magnitude entries, and keeps the rest as the new residual, so nothing is lost, only delayed.
/// One instance per client; it carries state across rounds.
/// </summary>
public sealed class TopKSparsifier
{
    private readonly float[] _residual;

    /// <summary>Fraction of entries sent.</summary>
    public double Fraction { get; }

    /// <exception cref="ArgumentOutOfRangeException">length not positive or fraction outside (0, 1].</exception>
    public TopKSparsifier(int length, double fraction)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length));
        if (!(fraction > 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction));
        _residual = new float[length];
        Fraction = fraction;
    }

    /// <summary>The error carried to the next round.</summary>
    public ReadOnlySpan<float> Residual => _residual;

    /// <summary>Compresses update + residual; the unsent part becomes the residual.</summary>
    public SparseVector Compress(ReadOnlySpan<float> update)
    {
        if (update.Length != _residual.Length) throw new ArgumentException("Update length differs.", nameof(update));
        var corrected = new float[update.Length];
        for (var i = 0; i < corrected.Length; i++) corrected[i] = update[i] + _residual[i];
        var k = Math.Max(1, (int)Math.Round(Fraction * corrected.Length));
        var indices = TopIndices(corrected, k);
        var values = new float[indices.Length];
        Array.Copy(corrected, _residual, corrected.Length);
        for (var j = 0; j < indices.Length; j++)
        {
            values[j] = corrected[indices[j]];
            _residual[indices[j]] = 0;
        }
        return new SparseVector(corrected.Length, indices, values);
    }

    /// <summary>Indices of the k largest |v|, ascending (ties broken by index).</summary>
    public static int[] TopIndices(ReadOnlySpan<float> v, int k)
    {
        k = Math.Clamp(k, 0, v.Length);
        var mags = new float[v.Length];
        for (var i = 0; i < v.Length; i++) mags[i] = Math.Abs(v[i]);
        var sorted = (float[])mags.Clone();
        Array.Sort(sorted);
        if (k == 0) return [];
        var threshold = sorted[v.Length - k];
        var above = 0;
        for (var i = 0; i < mags.Length; i++) if (mags[i] > threshold) above++;
        var equalAllowed = k - above;
        var result = new int[k];
        var o = 0;
        for (var i = 0; i < mags.Length; i++)
        {
            if (mags[i] > threshold) result[o++] = i;
            else if (mags[i] == threshold && equalAllowed > 0) { result[o++] = i; equalAllowed--; }
        }
        return result;
    }
}
