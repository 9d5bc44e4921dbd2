namespace Serverless.Privacy.DifferentialPrivacy;

/// <summary>
/// The pieces of DP-FedAvg (McMahan et al. 2018) applied to flat update vectors: L2 clipping to S,
/// Gaussian noise of std z*S on the aggregate (central), or split across clients so that the sum of
/// at least <c>minSurvivors</c> shares carries the full variance (distributed, for use under secure
/// aggregation: each client adds std z*S/sqrt(minSurvivors)).
/// </summary>
public static class GaussianMechanism
{
    /// <summary>Scales <paramref name="update"/> in place so its L2 norm is at most <paramref name="clipNorm"/>; returns the norm before clipping.</summary>
    /// <exception cref="ArgumentOutOfRangeException">clipNorm not positive.</exception>
    /// <exception cref="ArgumentException">the update holds NaN or infinity.</exception>
    public static double ClipL2(Span<float> update, double clipNorm)
    {
        if (!(clipNorm > 0)) throw new ArgumentOutOfRangeException(nameof(clipNorm), "Clip norm must be positive.");
        double sumSq = 0;
        foreach (var v in update) sumSq += (double)v * v;
        if (!double.IsFinite(sumSq)) throw new ArgumentException("Update holds NaN or infinite values.", nameof(update));
        var norm = Math.Sqrt(sumSq);
        if (norm > clipNorm)
        {
            var scale = (float)(clipNorm / norm);
            for (var i = 0; i < update.Length; i++) update[i] *= scale;
        }
        return norm;
    }

    /// <summary>L2 norm.</summary>
    public static double Norm(ReadOnlySpan<float> v) => Math.Sqrt(TensorPrimitivesSumSquares(v));

    private static double TensorPrimitivesSumSquares(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (var x in v) s += (double)x * x;
        return s;
    }

    /// <summary>
    /// Per-client noise std for distributed DP: z*S/sqrt(minSurvivors - colluding). Under secure aggregation
    /// the sum holds the noise shares of every survivor, at least <paramref name="minSurvivors"/> of them; a
    /// server that colludes with <paramref name="colluding"/> of those clients learns their shares and can
    /// subtract them, so only minSurvivors - colluding honest shares are certain to remain, and those must
    /// carry the full variance (z*S)^2 on their own. An honest client's own share always remains, so the
    /// divisor is never below 1 (with every other survivor colluding, each client adds the full z*S).
    /// </summary>
    /// <param name="noiseMultiplier">z: the sum's noise std over the L2 sensitivity.</param>
    /// <param name="clipNorm">S: the L2 sensitivity of the sum (one contribution's bound).</param>
    /// <param name="minSurvivors">The fewest clients whose shares the sum can hold.</param>
    /// <param name="colluding">Clients whose shares an adversary may know and subtract (0 = honest-but-curious server only; t - 1 for a server that colludes with fewer clients than the secure-aggregation threshold t).</param>
    public static double DistributedStd(double noiseMultiplier, double clipNorm, int minSurvivors, int colluding = 0)
    {
        if (minSurvivors < 1) throw new ArgumentOutOfRangeException(nameof(minSurvivors));
        if (colluding < 0) throw new ArgumentOutOfRangeException(nameof(colluding));
        return noiseMultiplier * clipNorm / Math.Sqrt(Math.Max(1, minSurvivors - colluding));
    }

    /// <summary>Adds i.i.d. N(0, std^2) to every entry, drawing from <paramref name="random"/>
    /// (use <see cref="CryptoRandom"/> in production: noise is a secret).</summary>
    public static void AddGaussianNoise(Span<float> values, double std, Random random)
    {
        if (!(std >= 0)) throw new ArgumentOutOfRangeException(nameof(std));
        if (std == 0) return;
        for (var i = 0; i < values.Length; i += 2)
        {
            var (a, b) = StandardNormalPair(random);
            values[i] += (float)(a * std);
            if (i + 1 < values.Length) values[i + 1] += (float)(b * std);
        }
    }

    /// <summary>
    /// The same Gaussian noise on double-precision values (the statistics stage's counts and sums, which a float
    /// would round at a few million).
    /// </summary>
    public static void AddGaussianNoise(Span<double> values, double std, Random random)
    {
        if (!(std >= 0)) throw new ArgumentOutOfRangeException(nameof(std));
        if (std == 0) return;
        for (var i = 0; i < values.Length; i += 2)
        {
            var (a, b) = StandardNormalPair(random);
            values[i] += a * std;
            if (i + 1 < values.Length) values[i + 1] += b * std;
        }
    }

    // Box-Muller: two independent standard normals per pair of uniforms.
    private static (double, double) StandardNormalPair(Random random)
    {
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        var r = Math.Sqrt(-2 * Math.Log(u1));
        return (r * Math.Cos(2 * Math.PI * u2), r * Math.Sin(2 * Math.PI * u2));
    }
}

/// <summary>A <see cref="Random"/> whose bits come from <see cref="RandomNumberGenerator"/>: for DP noise and anything else secret.</summary>
public sealed class CryptoRandom : Random
{
    /// <inheritdoc />
    protected override double Sample() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <inheritdoc />
    public override double NextDouble() => Sample();

    /// <inheritdoc />
    public override int Next() => (int)(NextUInt64() >> 33);

    /// <inheritdoc />
    public override int Next(int maxValue) => maxValue <= 0 ? (maxValue == 0 ? 0 : throw new ArgumentOutOfRangeException(nameof(maxValue))) : RandomNumberGenerator.GetInt32(maxValue);

    /// <inheritdoc />
    public override int Next(int minValue, int maxValue) => minValue == maxValue ? minValue : RandomNumberGenerator.GetInt32(minValue, maxValue);

    /// <inheritdoc />
    public override void NextBytes(byte[] buffer) => RandomNumberGenerator.Fill(buffer);

    /// <inheritdoc />
    public override void NextBytes(Span<byte> buffer) => RandomNumberGenerator.Fill(buffer);

    private static ulong NextUInt64()
    {
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return BitConverter.ToUInt64(b);
    }
}
