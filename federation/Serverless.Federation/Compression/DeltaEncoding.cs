namespace Serverless.Federation.Compression;

/// <summary>Updates travel as deltas against the global model the client was given (smaller, and what compression and clipping act on).</summary>
public static class DeltaEncoding
{
    /// <summary>local - global.</summary>
    public static float[] Delta(ReadOnlySpan<float> local, ReadOnlySpan<float> global)
    {
        if (local.Length != global.Length) throw new ArgumentException("Parameter vectors differ in length.");
        var d = new float[local.Length];
        for (var i = 0; i < d.Length; i++) d[i] = local[i] - global[i];
        return d;
    }

    /// <summary>global + delta.</summary>
    public static float[] Apply(ReadOnlySpan<float> global, ReadOnlySpan<float> delta)
    {
        if (delta.Length != global.Length) throw new ArgumentException("Parameter vectors differ in length.");
        var p = new float[global.Length];
        for (var i = 0; i < p.Length; i++) p[i] = global[i] + delta[i];
        return p;
    }
}
