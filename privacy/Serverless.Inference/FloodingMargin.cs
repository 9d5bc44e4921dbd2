namespace Serverless.Inference;

/// <summary>
/// How far a plan's result flooding sits above the circuit's noise (docs/decisions 0021-result-flooding-budget):
/// results are flooded with uniform noise of <see cref="FloodingBits"/> bits, and two results for the same records
/// differ by at most <see cref="NoiseMax"/> in a coefficient before flooding.
/// </summary>
/// <param name="FloodingBits">b: the flooding noise is uniform in [−2^b, 2^b) per coefficient.</param>
/// <param name="NoiseMax">max |δ|: the circuit's noise difference between two encryptions of the same records (at least 1).</param>
/// <param name="RingDegree">N of the plan's parameters.</param>
public sealed record FloodingMargin(int FloodingBits, double NoiseMax, int RingDegree)
{
    /// <summary>b − log2 max|δ|: how many bits the flooding width exceeds the noise by.</summary>
    public double MarginBits => FloodingBits - Math.Log2(NoiseMax);

    /// <summary>b − log2(N · max|δ|): the statistical bits the flooding lemma proves (nothing when negative).</summary>
    public double LemmaBits => FloodingBits - Math.Log2(RingDegree * NoiseMax);
}
