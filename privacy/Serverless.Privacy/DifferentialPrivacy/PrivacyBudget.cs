namespace Serverless.Privacy.DifferentialPrivacy;

/// <summary>The (epsilon, delta) budget was about to be exceeded.</summary>
public sealed class PrivacyBudgetExceededException(string message) : Exception(message);

/// <summary>
/// A federation's privacy budget: composes the RDP of every round spent (each round may use its own
/// sampling rate and noise multiplier; RDP adds per order) and refuses a round whose epsilon, at the
/// budget's delta, would exceed <see cref="EpsilonMax"/>. Spent epsilon never decreases.
/// Not thread-safe: one orchestration owns one budget.
/// </summary>
public sealed class PrivacyBudget
{
    private readonly double[] _orders;
    private readonly double[] _rdp;

    /// <summary>The largest epsilon this budget allows.</summary>
    public double EpsilonMax { get; }

    /// <summary>The delta at which epsilon is reported.</summary>
    public double Delta { get; }

    /// <summary>Rounds (mechanism invocations) spent so far.</summary>
    public long StepsSpent { get; private set; }

    /// <summary>Epsilon spent so far (0 before any round).</summary>
    public double EpsilonSpent { get; private set; }

    /// <exception cref="ArgumentOutOfRangeException">epsilonMax not positive or delta outside (0, 1).</exception>
    public PrivacyBudget(double epsilonMax, double delta, IReadOnlyList<double>? orders = null, IReadOnlyList<double>? rdpSpent = null)
    {
        if (!(epsilonMax > 0)) throw new ArgumentOutOfRangeException(nameof(epsilonMax), "Epsilon budget must be positive.");
        if (!(delta > 0 && delta < 1)) throw new ArgumentOutOfRangeException(nameof(delta), "Delta must be in (0, 1).");
        EpsilonMax = epsilonMax;
        Delta = delta;
        _orders = [.. orders ?? SampledGaussianRdp.DefaultOrders];
        _rdp = new double[_orders.Length];
        if (rdpSpent is not null)
        {
            if (rdpSpent.Count != _orders.Length) throw new ArgumentException("One RDP value per order.", nameof(rdpSpent));
            for (var i = 0; i < _rdp.Length; i++)
                _rdp[i] = rdpSpent[i] >= 0 ? rdpSpent[i] : throw new ArgumentOutOfRangeException(nameof(rdpSpent), "RDP values are non-negative.");
            EpsilonSpent = SampledGaussianRdp.Epsilon(_orders, _rdp, delta).Epsilon;
        }
    }

    /// <summary>The RDP curve spent so far (to persist the budget with a checkpoint).</summary>
    public IReadOnlyList<double> RdpSpent => _rdp;

    /// <summary>The orders the curve is kept at.</summary>
    public IReadOnlyList<double> Orders => _orders;

    /// <summary>Epsilon after spending <paramref name="steps"/> more steps of the sampled Gaussian (q, z), without spending them.</summary>
    public double EpsilonAfter(double q, double noiseMultiplier, long steps = 1)
    {
        var next = new double[_rdp.Length];
        for (var i = 0; i < next.Length; i++) next[i] = _rdp[i] + steps * SampledGaussianRdp.RdpPerStep(q, noiseMultiplier, _orders[i]);
        return SampledGaussianRdp.Epsilon(_orders, next, Delta).Epsilon;
    }

    /// <summary>
    /// Epsilon after one step of each of several mechanisms (a round's statistics release and its training
    /// step, each a Gaussian with its own sampling rate and noise multiplier), without spending them: RDP adds
    /// per order (Mironov 2017, Proposition 1), so the composition is the sum of the curves.
    /// </summary>
    public double EpsilonAfter(IReadOnlyList<(double SamplingRate, double NoiseMultiplier)> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        var next = _rdp.ToArray();
        foreach (var (q, z) in steps)
            for (var i = 0; i < next.Length; i++) next[i] += SampledGaussianRdp.RdpPerStep(q, z, _orders[i]);
        return SampledGaussianRdp.Epsilon(_orders, next, Delta).Epsilon;
    }

    /// <summary>Spends the steps if the budget allows; returns false (and spends nothing) otherwise.</summary>
    public bool TrySpend(double q, double noiseMultiplier, long steps, out double epsilonAfter)
    {
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps));
        epsilonAfter = EpsilonAfter(q, noiseMultiplier, steps);
        if (epsilonAfter > EpsilonMax) return false;
        for (var i = 0; i < _rdp.Length; i++) _rdp[i] += steps * SampledGaussianRdp.RdpPerStep(q, noiseMultiplier, _orders[i]);
        StepsSpent += steps;
        EpsilonSpent = Math.Max(EpsilonSpent, epsilonAfter);
        return true;
    }

    /// <summary>Spends the steps or throws.</summary>
    /// <exception cref="PrivacyBudgetExceededException">the round would exceed the budget.</exception>
    public double Spend(double q, double noiseMultiplier, long steps = 1)
    {
        if (!TrySpend(q, noiseMultiplier, steps, out var eps))
            throw new PrivacyBudgetExceededException($"Refusing the round: epsilon would reach {eps:F4} > budget {EpsilonMax:F4} at delta {Delta:G3}.");
        return eps;
    }

    /// <summary>The largest number of further steps of (q, z) the budget allows (binary search; epsilon is monotone in steps).</summary>
    public long RemainingSteps(double q, double noiseMultiplier, long cap = 1L << 40)
    {
        if (EpsilonAfter(q, noiseMultiplier, 1) > EpsilonMax) return 0;
        long lo = 1, hi = 2;
        while (hi < cap && EpsilonAfter(q, noiseMultiplier, hi) <= EpsilonMax) { lo = hi; hi *= 2; }
        if (hi >= cap) return cap;
        while (hi - lo > 1)
        {
            var mid = lo + (hi - lo) / 2;
            if (EpsilonAfter(q, noiseMultiplier, mid) <= EpsilonMax) lo = mid; else hi = mid;
        }
        return lo;
    }
}
