namespace Serverless.Federation.Privacy;

/// <summary>Where the Gaussian noise is added.</summary>
public enum NoisePlacement
{
    /// <summary>The server clips the visible updates and adds N(0, (zS/n)^2) to their mean.</summary>
    Central,

    /// <summary>Each client clips and adds N(0, z^2 S^2 / minSurvivors); the (secure) sum of at least minSurvivors carries the full noise.</summary>
    Distributed,
}

/// <summary>Client-level DP (DP-FedAvg, McMahan et al. 2018) with fixed clipping.</summary>
/// <param name="ClipNorm">S: L2 bound on each client's update.</param>
/// <param name="NoiseMultiplier">z: noise std on the sum is z*S.</param>
/// <param name="Placement">Central or distributed noise.</param>
/// <param name="MinSurvivors">Distributed: the number of clients whose noise the sum is guaranteed to contain.</param>
/// <param name="Delta">The delta epsilon is reported at.</param>
/// <param name="EpsilonMax">The budget; a round that would exceed it is refused.</param>
public sealed record DpOptions(double ClipNorm, double NoiseMultiplier, NoisePlacement Placement, int MinSurvivors, double Delta, double EpsilonMax)
{
    /// <summary>Checks ranges.</summary>
    public DpOptions Validated()
    {
        if (!(ClipNorm > 0)) throw new ArgumentOutOfRangeException(nameof(ClipNorm));
        if (!(NoiseMultiplier >= 0)) throw new ArgumentOutOfRangeException(nameof(NoiseMultiplier));
        if (MinSurvivors < 1) throw new ArgumentOutOfRangeException(nameof(MinSurvivors));
        if (!(Delta > 0 && Delta < 1)) throw new ArgumentOutOfRangeException(nameof(Delta));
        if (!(EpsilonMax > 0)) throw new ArgumentOutOfRangeException(nameof(EpsilonMax));
        return this;
    }
}

/// <summary>
/// Differential privacy as a wrapper around any strategy (as Flower's DifferentialPrivacy*FixedClipping):
/// ConfigureRound refuses a round the budget cannot pay for and tells clients to clip (and, for
/// distributed noise, to add their share); AggregateRound clips and adds central noise when the
/// server sees the updates, then charges the accountant. The sampling rate charged is the fraction
/// of clients selected, q = selected / population (Poisson-sampling analysis; q = 1 when all take part).
/// </summary>
public sealed class DifferentialPrivacyStrategy : IStrategy
{
    private readonly IStrategy _inner;
    private readonly DpOptions _o;
    private readonly int _population;
    private readonly Random _noise;
    private double _lastQ = 1;

    /// <summary>The privacy budget being spent.</summary>
    public PrivacyBudget Budget { get; }

    /// <param name="inner">The strategy whose aggregation is privatised.</param>
    /// <param name="options">Clipping, noise and budget.</param>
    /// <param name="population">Number of clients that could be selected (for q).</param>
    /// <param name="noise">Noise randomness: <see cref="CryptoRandom"/> in production, seeded in simulations.</param>
    /// <param name="budget">An existing budget to continue (restored from a checkpoint), or null for a fresh one.</param>
    public DifferentialPrivacyStrategy(IStrategy inner, DpOptions options, int population, Random? noise = null, PrivacyBudget? budget = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _o = (options ?? throw new ArgumentNullException(nameof(options))).Validated();
        if (population < 1) throw new ArgumentOutOfRangeException(nameof(population));
        _population = population;
        _noise = noise ?? new CryptoRandom();
        Budget = budget ?? new PrivacyBudget(options.EpsilonMax, options.Delta);
    }

    /// <summary>The noise multiplier that spends exactly <paramref name="epsilon"/> over <paramref name="rounds"/> rounds at sampling rate q (bisection; epsilon falls as z grows).</summary>
    public static double CalibrateNoise(double epsilon, double delta, double q, int rounds)
    {
        double lo = 0.05, hi = 1000;
        for (var i = 0; i < 80; i++)
        {
            var mid = Math.Sqrt(lo * hi);
            if (SampledGaussianRdp.Epsilon(q, mid, rounds, delta) > epsilon) lo = mid; else hi = mid;
        }
        return hi;
    }

    /// <inheritdoc />
    /// <exception cref="PrivacyBudgetExceededException">the round would exceed the budget.</exception>
    public IReadOnlyList<FitInstruction> ConfigureRound(int round, float[] globalParameters, IReadOnlyList<string> availableClients)
    {
        var instructions = _inner.ConfigureRound(round, globalParameters, availableClients);
        var q = Math.Min(1.0, instructions.Count / (double)_population);
        var after = Budget.EpsilonAfter(q, _o.NoiseMultiplier);
        if (after > Budget.EpsilonMax)
            throw new PrivacyBudgetExceededException($"Round {round} refused: epsilon would reach {after:F4} > budget {Budget.EpsilonMax:F4}.");
        _lastQ = q;
        var std = _o.Placement == NoisePlacement.Distributed ? GaussianMechanism.DistributedStd(_o.NoiseMultiplier, _o.ClipNorm, _o.MinSurvivors) : 0;
        return instructions.Select(i => i with { Config = i.Config with { ClipNorm = _o.ClipNorm, NoiseStd = std, UniformWeight = true } }).ToArray();
    }

    /// <inheritdoc />
    public AggregateResult AggregateRound(int round, float[] globalParameters, IReadOnlyList<FitResult> results)
    {
        var prepared = results;
        if (_o.Placement == NoisePlacement.Central)
        {
            // Clip here too: the server cannot trust that clients did.
            prepared = results.Select(r =>
            {
                var d = (float[])r.Delta.Clone();
                if (d.Length == globalParameters.Length && d.All(float.IsFinite)) GaussianMechanism.ClipL2(d, _o.ClipNorm);
                return r with { Delta = d, NumExamples = r.NumExamples > 0 ? 1 : r.NumExamples };
            }).ToArray();
        }
        var inner = _inner.AggregateRound(round, globalParameters, prepared);
        var parameters = inner.Parameters;
        if (_o.Placement == NoisePlacement.Central)
        {
            var n = Math.Max(1, results.Count - inner.Excluded.Count);
            parameters = (float[])parameters.Clone();
            GaussianMechanism.AddGaussianNoise(parameters, _o.NoiseMultiplier * _o.ClipNorm / n, _noise);
        }
        var eps = Budget.Spend(_lastQ, _o.NoiseMultiplier);
        var metrics = new Dictionary<string, double>(inner.Metrics) { ["epsilon"] = eps, ["delta"] = _o.Delta, ["noise_multiplier"] = _o.NoiseMultiplier };
        return inner with { Parameters = parameters, Metrics = metrics };
    }

    /// <inheritdoc />
    public IReadOnlyList<EvaluateInstruction> ConfigureEvaluation(int round, float[] parameters, IReadOnlyList<string> availableClients) =>
        _inner.ConfigureEvaluation(round, parameters, availableClients);

    /// <inheritdoc />
    public EvaluationSummary AggregateEvaluation(int round, IReadOnlyList<EvaluateResult> results) => _inner.AggregateEvaluation(round, results);
}
