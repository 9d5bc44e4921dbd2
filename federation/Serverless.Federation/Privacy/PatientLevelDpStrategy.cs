using System.Globalization;

namespace Serverless.Federation.Privacy;

/// <summary>Patient-level DP settings: DP-SGD in every hospital's local training and a per-patient budget.</summary>
/// <param name="ClipNorm">C: L2 bound on each record's gradient.</param>
/// <param name="NoiseMultiplier">sigma: noise std on each step's sum of clipped gradients is sigma C.</param>
/// <param name="ExpectedBatchSize">L: each step samples each record with probability q = L / records.</param>
/// <param name="Delta">The delta epsilon is reported at; must be below 1 / records of every hospital.</param>
/// <param name="EpsilonMax">The per-patient budget; a round that would take any hospital's patients past it is refused.</param>
public sealed record PatientDpOptions(double ClipNorm, double NoiseMultiplier, int ExpectedBatchSize, double Delta, double EpsilonMax)
{
    /// <summary>Checks ranges.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a value out of range.</exception>
    public PatientDpOptions Validated()
    {
        if (!(ClipNorm > 0) || !double.IsFinite(ClipNorm)) throw new ArgumentOutOfRangeException(nameof(ClipNorm));
        if (!(NoiseMultiplier > 0) || !double.IsFinite(NoiseMultiplier)) throw new ArgumentOutOfRangeException(nameof(NoiseMultiplier), "patient-level DP needs a positive noise multiplier");
        if (ExpectedBatchSize < 1) throw new ArgumentOutOfRangeException(nameof(ExpectedBatchSize));
        if (!(Delta > 0 && Delta < 1)) throw new ArgumentOutOfRangeException(nameof(Delta));
        if (!(EpsilonMax > 0)) throw new ArgumentOutOfRangeException(nameof(EpsilonMax));
        return this;
    }
}

/// <summary>
/// Patient-level differential privacy as a wrapper around any strategy: every selected hospital trains
/// with DP-SGD (<see cref="DpSgdInstruction"/>), and one RDP accountant per hospital composes the
/// sampled Gaussian over every local step of every round, at q = L / records (a patient's records live
/// in one hospital, so the federation's per-patient epsilon is the largest hospital epsilon: parallel
/// composition). ConfigureRound refuses a round, before anyone trains, when any selected hospital's
/// epsilon would exceed the budget; AggregateRound charges the steps and reports that epsilon. The
/// aggregation path (visible or secure) is the inner strategy's, unchanged: the noise is already in
/// each update. The hospitals run the same accountant on their side (they need not trust the server).
/// </summary>
public sealed class PatientLevelDpStrategy : IStrategy
{
    private readonly IStrategy _inner;
    private readonly PatientDpOptions _o;
    private readonly IReadOnlyDictionary<string, int> _records;
    private readonly Dictionary<string, PrivacyBudget> _budgets = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (double Q, long Steps, double Sigma)> _planned = new(StringComparer.Ordinal);
    private readonly IReadOnlyDictionary<string, double>? _noise;

    /// <param name="inner">The strategy whose clients train privately.</param>
    /// <param name="options">DP-SGD settings and the per-patient budget.</param>
    /// <param name="recordsPerClient">Each hospital's number of training records (patients), declared at enrolment.</param>
    /// <param name="noisePerClient">
    /// Each hospital's own sigma (null = <see cref="PatientDpOptions.NoiseMultiplier"/> for all): a hospital with more
    /// records has a smaller sampling rate, so it reaches the same per-patient epsilon with less noise
    /// (<see cref="CalibrateNoisePerHospital"/>). Each hospital's accountant charges its own sigma.
    /// </param>
    /// <exception cref="ArgumentException">a hospital has no records, delta is not below 1 / records, or a per-hospital sigma is missing or not positive.</exception>
    public PatientLevelDpStrategy(IStrategy inner, PatientDpOptions options, IReadOnlyDictionary<string, int> recordsPerClient, IReadOnlyDictionary<string, double>? noisePerClient = null)
    {
        _inner = inner ?? throw new ArgumentNullException(nameof(inner));
        _o = (options ?? throw new ArgumentNullException(nameof(options))).Validated();
        _records = recordsPerClient ?? throw new ArgumentNullException(nameof(recordsPerClient));
        _noise = noisePerClient;
        foreach (var (id, n) in _records)
        {
            if (n < 1) throw new ArgumentException($"hospital {id} declares {n} records", nameof(recordsPerClient));
            if (_noise is not null && !(_noise.TryGetValue(id, out var sigma) && sigma > 0 && double.IsFinite(sigma)))
                throw new ArgumentException($"hospital {id} has no positive noise multiplier", nameof(noisePerClient));
            if (_o.Delta >= 1.0 / n)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"delta {_o.Delta:G3} is not below 1/records = {1.0 / n:G3} for hospital {id}: such a delta allows releasing a patient's record outright"), nameof(options));
            _budgets[id] = new PrivacyBudget(_o.EpsilonMax, _o.Delta);
        }
    }

    /// <summary>Each hospital's accountant (per-patient epsilon of its patients).</summary>
    public IReadOnlyDictionary<string, PrivacyBudget> Budgets => _budgets;

    /// <summary>The federation's per-patient epsilon: the largest over hospitals.</summary>
    public double EpsilonSpent => _budgets.Count == 0 ? 0 : _budgets.Values.Max(b => b.EpsilonSpent);

    /// <summary>The sigma hospital <paramref name="clientId"/> trains with.</summary>
    public double NoiseMultiplierOf(string clientId) => _noise is not null && _noise.TryGetValue(clientId, out var s) ? s : _o.NoiseMultiplier;

    /// <summary>
    /// Each hospital's sigma that spends <paramref name="epsilon"/> per patient over <paramref name="rounds"/> rounds of
    /// <paramref name="localEpochs"/> local epochs at expected batch <paramref name="expectedBatchSize"/> on its own records
    /// (every hospital's patients get the same guarantee; none is held to the smallest hospital's noise).
    /// </summary>
    public static IReadOnlyDictionary<string, double> CalibrateNoisePerHospital(double epsilon, double delta, int expectedBatchSize, int localEpochs, int rounds, IReadOnlyDictionary<string, int> recordsPerClient)
    {
        ArgumentNullException.ThrowIfNull(recordsPerClient);
        return recordsPerClient.ToDictionary(kv => kv.Key, kv => CalibrateNoise(epsilon, delta, DpSgdOptions.SamplingRate(expectedBatchSize, kv.Value),
            rounds * DpSgdOptions.PlannedSteps(expectedBatchSize, kv.Value, localEpochs)), StringComparer.Ordinal);
    }

    /// <summary>
    /// The noise multiplier sigma that spends <paramref name="epsilon"/> at <paramref name="delta"/> over
    /// <paramref name="steps"/> DP-SGD steps at sampling rate q (bisection; epsilon falls as sigma grows).
    /// </summary>
    public static double CalibrateNoise(double epsilon, double delta, double q, long steps)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon));
        double lo = 0.3, hi = 200;
        for (var i = 0; i < 40; i++)
        {
            var mid = Math.Sqrt(lo * hi);
            if (SampledGaussianRdp.Epsilon(q, mid, steps, delta) > epsilon) lo = mid; else hi = mid;
        }
        return hi;
    }

    /// <inheritdoc />
    /// <exception cref="PrivacyBudgetExceededException">the round would take some hospital's patients past the budget.</exception>
    public IReadOnlyList<FitInstruction> ConfigureRound(int round, float[] globalParameters, IReadOnlyList<string> availableClients)
    {
        var instructions = _inner.ConfigureRound(round, globalParameters, availableClients);
        var planned = new Dictionary<string, (double, long, double)>(StringComparer.Ordinal);
        foreach (var ins in instructions)
        {
            if (!_records.TryGetValue(ins.ClientId, out var n))
                throw new InvalidOperationException($"Round {round}: hospital {ins.ClientId} declared no record count; patient-level DP cannot account for it.");
            var q = DpSgdOptions.SamplingRate(_o.ExpectedBatchSize, n);
            var steps = DpSgdOptions.PlannedSteps(_o.ExpectedBatchSize, n, ins.Config.LocalEpochs);
            var sigma = NoiseMultiplierOf(ins.ClientId);
            var after = _budgets[ins.ClientId].EpsilonAfter(q, sigma, steps);
            if (after > _o.EpsilonMax)
                throw new PrivacyBudgetExceededException(string.Create(CultureInfo.InvariantCulture,
                    $"Round {round} refused: the patients of {ins.ClientId} would reach epsilon {after:F4} > budget {_o.EpsilonMax:F4} at delta {_o.Delta:G3} ({steps} more DP-SGD steps at q = {q:G3})."));
            planned[ins.ClientId] = (q, steps, sigma);
        }
        _planned.Clear();
        foreach (var (id, p) in planned) _planned[id] = p;
        return instructions.Select(i => i with { Config = i.Config with { DpSgd = new DpSgdInstruction(_o.ClipNorm, _planned[i.ClientId].Sigma, _o.ExpectedBatchSize) } }).ToArray();
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">a visible update reports a different number of DP-SGD steps than planned.</exception>
    public AggregateResult AggregateRound(int round, float[] globalParameters, IReadOnlyList<FitResult> results)
    {
        foreach (var r in results)
            if (_planned.TryGetValue(r.ClientId, out var plan) && r.Metrics is { } m && m.TryGetValue("dp_steps", out var taken) && taken != plan.Steps)
                throw new InvalidOperationException($"Round {round}: {r.ClientId} took {taken} DP-SGD steps, {plan.Steps} were accounted.");
        var inner = _inner.AggregateRound(round, globalParameters, results);
        // Every instructed hospital trained on its records, whether or not its update was aggregated: charge them all.
        long steps = 0;
        var largestSigma = 0.0;
        foreach (var (id, (q, s, sigma)) in _planned)
        {
            _budgets[id].Spend(q, sigma, s);
            steps += s;
            largestSigma = Math.Max(largestSigma, sigma);
        }
        _planned.Clear();
        var metrics = new Dictionary<string, double>(inner.Metrics)
        {
            ["epsilon"] = EpsilonSpent, ["delta"] = _o.Delta, ["noise_multiplier"] = largestSigma, ["dp_sgd_steps"] = steps,
        };
        return inner with { Metrics = metrics };
    }

    /// <inheritdoc />
    public IReadOnlyList<EvaluateInstruction> ConfigureEvaluation(int round, float[] parameters, IReadOnlyList<string> availableClients) =>
        _inner.ConfigureEvaluation(round, parameters, availableClients);

    /// <inheritdoc />
    public EvaluationSummary AggregateEvaluation(int round, IReadOnlyList<EvaluateResult> results) => _inner.AggregateEvaluation(round, results);
}
