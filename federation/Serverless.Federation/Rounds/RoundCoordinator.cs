using System.Globalization;
using System.Security.Cryptography;
using Serverless.Federation.Aggregation;
using Serverless.Federation.Compression;
using Serverless.Federation.SecureAggregation;
using Serverless.Model.Evaluation;
using Serverless.Model.Onnx;
using Serverless.Model.Preprocessing;

namespace Serverless.Federation.Rounds;

/// <summary>A round may not start; <see cref="Exception.Message"/> says why.</summary>
public sealed class RoundRefusedException(string title, string message, double? epsilonSpent = null, double? epsilonBudget = null, double? epsilonAfterRound = null)
    : Exception(message)
{
    /// <summary>Short title (ProblemDetails title).</summary>
    public string Title { get; } = title;

    /// <summary>Epsilon spent so far, when the budget refused.</summary>
    public double? EpsilonSpent { get; } = epsilonSpent;

    /// <summary>The budget, when the budget refused.</summary>
    public double? EpsilonBudget { get; } = epsilonBudget;

    /// <summary>Epsilon the round would have brought the federation to.</summary>
    public double? EpsilonAfterRound { get; } = epsilonAfterRound;
}

/// <summary>Outcome of closing one secure-aggregation phase.</summary>
/// <param name="Phase">The phase closed.</param>
/// <param name="Next">SecAgg ids expected in the next phase (empty after Unmasking).</param>
/// <param name="Dropped">Expected ids that sent nothing (or were not accepted) in this phase.</param>
/// <param name="Exclusions">Every exclusion the server has recorded so far in this stage.</param>
/// <param name="AbortReason">Set when the protocol cannot go on (too few clients, unreconstructable secret).</param>
/// <param name="Keys">After AdvertiseKeys: per client, its neighbours' keys.</param>
/// <param name="Shares">After ShareKeys: per client, the shares addressed to it.</param>
/// <param name="Unmask">After MaskedInput: the unmask request (the survivor set to sign in the malicious variant); after ConsistencyCheck: the request with the signatures.</param>
/// <param name="Result">After Unmasking: the sum.</param>
public sealed record PhaseCloseResult(RoundPhase Phase, int[] Next, int[] Dropped, SecAggExclusion[] Exclusions, string? AbortReason,
    IReadOnlyDictionary<int, KeysBroadcast>? Keys, IReadOnlyDictionary<int, ForwardedShares>? Shares, UnmaskRequest? Unmask, SecAggResult? Result);

/// <summary>Per-phase arrival sets of one stage, in protocol order (what the orchestration recorded as received before each close).</summary>
public sealed record StageArrivals(int[] AdvertiseKeys, int[] ShareKeys, int[] MaskedInput, int[] Unmasking, int[]? ConsistencyCheck = null)
{
    /// <summary>No arrivals yet.</summary>
    public static StageArrivals Empty { get; } = new([], [], [], []);

    /// <summary>The arrivals of a phase.</summary>
    public int[] Of(RoundPhase phase) => phase switch
    {
        RoundPhase.AdvertiseKeys => AdvertiseKeys,
        RoundPhase.ShareKeys => ShareKeys,
        RoundPhase.MaskedInput => MaskedInput,
        RoundPhase.ConsistencyCheck => ConsistencyCheck ?? [],
        RoundPhase.Unmasking => Unmasking,
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, "not a secure-aggregation phase"),
    };

    /// <summary>A copy with the arrivals of <paramref name="phase"/> set.</summary>
    public StageArrivals With(RoundPhase phase, int[] ids) => phase switch
    {
        RoundPhase.AdvertiseKeys => this with { AdvertiseKeys = ids },
        RoundPhase.ShareKeys => this with { ShareKeys = ids },
        RoundPhase.MaskedInput => this with { MaskedInput = ids },
        RoundPhase.ConsistencyCheck => this with { ConsistencyCheck = ids },
        RoundPhase.Unmasking => this with { Unmasking = ids },
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, "not a secure-aggregation phase"),
    };
}

/// <summary>Reads a stored client message of a stage (null when absent or unreadable).</summary>
public interface IRoundMessageSource
{
    /// <summary>The advertise message of a client.</summary>
    AdvertiseKeysMessage? AdvertiseKeys(int secAggId);

    /// <summary>The share message of a client.</summary>
    ShareKeysMessage? ShareKeys(int secAggId);

    /// <summary>The masked input of a client.</summary>
    MaskedInputMessage? MaskedInput(int secAggId);

    /// <summary>The unmask response of a client.</summary>
    UnmaskResponse? Unmasking(int secAggId);

    /// <summary>The consistency signature of a client (malicious-server variant).</summary>
    ConsistencySignature? ConsistencyCheck(int secAggId) => null;
}

/// <summary>A new model version's content and figures.</summary>
/// <param name="Parameters">New global parameters.</param>
/// <param name="Metrics">Aggregation figures (update norm, bound, survivors, ...).</param>
/// <param name="Excluded">Clients excluded by the robust checks (plain uploads only).</param>
/// <param name="NormViolation">Secure aggregation: the aggregate's norm exceeds what clipped contributions allow (reason), else null.</param>
/// <param name="Contributors">Clients whose update is in the aggregate.</param>
public sealed record AggregationOutcome(float[] Parameters, Dictionary<string, double> Metrics, RoundExcludedClient[] Excluded, string? NormViolation, int Contributors);

/// <summary>
/// The round's logic as plain functions the orchestration's activities call: planning (budget,
/// selection, secure-aggregation parameters, DP calibration), closing a secure-aggregation phase by
/// replaying the stored messages into a fresh <see cref="SecAggServer"/> (so no server state lives
/// in memory between activities), turning the statistics sum into a preprocessor, aggregating the
/// training update with its robust checks, evaluation and the promotion gate.
/// </summary>
public static class RoundCoordinator
{
    /// <summary>Default fractional bits of the statistics encoding.</summary>
    public const int StatisticsFractionBits = StatisticsEncoding.DefaultFractionBits;

    /// <summary>The accountant of a federation's state.</summary>
    public static PrivacyBudget BudgetOf(FederationState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var p = state.Config.Privacy;
        return state.Accountant is { } a
            ? new PrivacyBudget(p.EpsilonBudget, p.Delta, a.Orders, a.RdpSpent)
            : new PrivacyBudget(p.EpsilonBudget, p.Delta);
    }

    /// <summary>
    /// The sampling rate the accountant is charged at. Its RDP bound for q &lt; 1 is the sampled Gaussian
    /// of Poisson sampling (Mironov, Talwar and Zhang 2019), where each client joins independently with
    /// probability q; a round selects a fixed number of clients without replacement instead, which that
    /// bound does not cover. Until selection is Poisson, a subsampled round is charged as a full-
    /// participation round (q = 1): no amplification is claimed, so the reported epsilon is an upper bound.
    /// </summary>
    public static double AccountedSamplingRate(int selected, int population)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(selected, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(selected, population);
        return 1.0;   // selected / population once clients are Poisson-sampled
    }

    /// <summary>Number of clients a round of this federation would select.</summary>
    public static int SelectionSize(FederationConfig config, int enrolled) =>
        config.ClientsPerRound == 0 || config.ClientsPerRound >= enrolled ? enrolled : config.ClientsPerRound;

    /// <summary>Refuses a round that cannot start: too few clients, or a privacy budget the round would exceed.</summary>
    /// <exception cref="RoundRefusedException">the round must not start.</exception>
    public static void CheckCanStart(FederationState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var config = state.Config;
        var enrolled = state.Clients.Length;
        if (enrolled < config.MinClients)
            throw new RoundRefusedException("Too few clients", $"Federation '{config.Id}' has {enrolled} enrolled clients; a round needs at least minClients = {config.MinClients}.");
        if (!config.Privacy.Enabled) return;
        var budget = BudgetOf(state);
        var q = AccountedSamplingRate(SelectionSize(config, enrolled), enrolled);
        // A round that gathers the statistics releases them too: both Gaussian steps must fit.
        var after = state.PreprocessorJson is null
            ? budget.EpsilonAfter([(1.0, config.Privacy.StatisticsNoiseMultiplier), (q, config.Privacy.NoiseMultiplier)])
            : budget.EpsilonAfter(q, config.Privacy.NoiseMultiplier);
        if (after > config.Privacy.EpsilonBudget)
            throw new RoundRefusedException("Privacy budget exhausted",
                string.Create(CultureInfo.InvariantCulture, $"The next round would bring epsilon to {after:F4} (at delta {config.Privacy.Delta:G3}), over the budget of {config.Privacy.EpsilonBudget:G6}; epsilon spent so far is {budget.EpsilonSpent:F4}."),
                budget.EpsilonSpent, config.Privacy.EpsilonBudget, after);
    }

    /// <summary>Plans round <paramref name="round"/>: checks it may start, selects clients, fixes every parameter.</summary>
    /// <param name="state">The federation.</param>
    /// <param name="round">Round number.</param>
    /// <param name="now">Current time.</param>
    /// <param name="startedBy">Actor.</param>
    /// <param name="random">Selection randomness (a <see cref="CryptoRandom"/> in production; seeded in tests).</param>
    /// <exception cref="RoundRefusedException">the round must not start.</exception>
    public static RoundPlan Plan(FederationState state, int round, DateTimeOffset now, string startedBy, Random random)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(random);
        CheckCanStart(state);
        var config = state.Config;
        var population = state.Clients.Length;
        var size = SelectionSize(config, population);
        var pool = state.Clients.OrderBy(c => c.SecAggId).ToArray();
        if (size < population)
        {
            for (var i = pool.Length - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (pool[i], pool[j]) = (pool[j], pool[i]);
            }
        }
        var selected = pool.Take(size).OrderBy(c => c.SecAggId).Select(c => new PlannedClient(c.ClientId, c.SecAggId, c.CertificatePem)).ToArray();
        if (config.SecureAggregation is { Enabled: true, MaliciousServer: true })
        {
            var unsigned = selected.Where(c => SecAggSigningContext.SigningKeyOf(c.CertificatePem) is null).Select(c => c.ClientId).ToArray();
            if (unsigned.Length > 0)
                throw new RoundRefusedException("Clients without a signing identity",
                    $"Secure aggregation against an active server needs each client's enrolled certificate; {string.Join(", ", unsigned)} enrolled before it was kept and must enroll again.");
        }
        var ids = selected.Select(c => c.SecAggId).ToArray();

        var schema = FederationRules.SchemaOf(config);
        var columns = schema.NumericColumns().ToArray();
        var modelConfig = FederationRules.ModelConfigOf(config);
        var parameterCount = new CnnLstm(modelConfig).ParameterCount;
        var secure = config.SecureAggregation;
        var stages = new List<RoundStagePlan>();
        var needStatistics = state.PreprocessorJson is null;
        StatisticsMechanism? statisticsPrivacy = null;
        if (needStatistics)
        {
            try
            {
                statisticsPrivacy = StatisticsMechanism.Of(config.Privacy, columns);
            }
            catch (ArgumentException e)
            {
                throw new RoundRefusedException("Statistics without public ranges", $"Federation '{config.Id}': the private statistics stage needs privacy.statisticsRanges; {e.Message}.");
            }
            stages.Add(new RoundStagePlan(RoundStages.Statistics, true, Parameters(config, ids, StatisticsEncoding.VectorLength(columns.Length), StatisticsEncoding.RingBits)));
        }
        var trainingParameters = secure.Enabled ? Parameters(config, ids, parameterCount + 1, TrainingRingBits(secure, size)) : null;
        stages.Add(new RoundStagePlan(RoundStages.Training, secure.Enabled, trainingParameters));

        var threshold = trainingParameters?.Threshold ?? 1;
        var minSurvivors = Math.Max(config.MinClients, threshold);
        var dp = config.Privacy;
        var clip = dp.Enabled || dp.ClipNorm > 0 ? dp.ClipNorm : 0;
        // Slack for t - 1 colluders (issue 20): counted against the t survivors every client can verify, not the server's
        // MinClients, so each share is the whole z * S and the honest survivors' noise alone meets z (as the statistics stage,
        // decision 0023). An agent refuses a share below its own floor (--min-update-noise).
        var clientNoise = dp.Enabled && secure.Enabled ? GaussianMechanism.DistributedStd(dp.NoiseMultiplier, dp.ClipNorm, threshold, colluding: threshold - 1) : 0;
        var centralNoise = dp.Enabled && !secure.Enabled ? dp.NoiseMultiplier * dp.ClipNorm : 0;
        UpdateRingEncoding? encoding = null;
        if (secure.Enabled)
        {
            var bound = CoordinateBound(clip, clientNoise, parameterCount);
            encoding = new UpdateRingEncoding(trainingParameters!.RingBits, (float)bound, size, parameterCount);
            _ = UpdateEncoding.Codec(encoding);   // throws when the ring has no headroom for this many clients
        }
        var fit = new FitConfig(round, config.Training.LocalEpochs, config.Training.LearningRate, config.Training.ProximalMu,
            Seed: round, ClipNorm: clip, NoiseStd: clientNoise, UniformWeight: dp.Enabled);
        return new RoundPlan
        {
            Federation = config.Id,
            Round = round,
            Config = config,
            Selected = selected,
            Population = population,
            Stages = stages.ToArray(),
            BaseVersion = needStatistics ? VersionName(0) : state.CurrentVersion ?? throw new InvalidOperationException($"Federation '{config.Id}' has statistics but no current model version."),
            Fit = fit,
            Encoding = encoding,
            StatisticsColumns = columns,
            StatisticsPrivacy = statisticsPrivacy,
            SamplingRate = AccountedSamplingRate(size, population),
            CentralNoiseStd = centralNoise,
            MinSurvivors = Math.Min(minSurvivors, size),
            CreatedAt = now,
            StartedBy = startedBy,
        };
    }

    /// <summary>
    /// The training ring: b-bit stochastic quantization plus ceil(log2 n) bits of headroom, so the sum of n clients' b-bit
    /// values cannot wrap (RingCodec scales each client to (2^(k-1) - 1) / n units of its range); the fixed RingBits when b = 0.
    /// </summary>
    public static int TrainingRingBits(FederationSecureAggregation secure, int clients)
    {
        ArgumentNullException.ThrowIfNull(secure);
        if (secure.QuantizationBits == 0) return secure.RingBits;
        var headroom = 0;
        while ((1 << headroom) < clients) headroom++;
        return Math.Min(32, secure.QuantizationBits + headroom);
    }

    /// <summary>
    /// The codec's range ±B for one coordinate of a client's update. Without clipping it is 1 (coordinates beyond are clamped).
    /// A noise share (client-level DP) adds a Gaussian of std sigma to coordinates up to S: B = S + 6 sigma makes clamping
    /// a one-in-a-billion event. Without one, a coordinate of an update clipped to norm S reaches S only when the update is
    /// 1-sparse; B = S min(1, 8 / sqrt(d)) clamps a coordinate only when it holds over 1/64 of S^2 on its own (honest
    /// d = 921 updates measure norms of 10-15 against S = 25 and spread over every coordinate), and a clamped update still
    /// reaches norm 8 S, so the aggregate-norm check still sees an unclipped client. The finer range is worth a bit: at
    /// d = 921, 7-bit quantization in it is twice as fine as 8 bits over ±S. 1 % beyond keeps a coordinate at exactly B
    /// strictly inside the codec's range, where its headroom is exact (see UpdateEncoding).
    /// </summary>
    public static double CoordinateBound(double clip, double clientNoise, int parameterCount)
    {
        if (clip <= 0) return 1.01;
        if (clientNoise > 0) return (clip + 6 * clientNoise) * 1.01;
        return clip * Math.Min(1, 8 / Math.Sqrt(Math.Max(1, parameterCount))) * 1.01;
    }

    /// <summary>Version name of round <paramref name="round"/>'s model (<c>v0</c> = initial).</summary>
    public static string VersionName(int round) => $"v{round}";

    private static SecAggRoundParameters Parameters(FederationConfig config, int[] ids, int vectorLength, int ringBits)
    {
        var s = config.SecureAggregation;
        var options = new SecureAggregationOptions { RingBits = ringBits, ThresholdFraction = s.ThresholdFraction, SecAggPlus = s.SecAggPlus };
        var p = options.RoundParameters(ids, vectorLength, RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));
        if (s.Threshold > 0) p = p with { Threshold = s.Threshold };
        p.BuildGraph();   // validates the threshold against the neighbourhood
        if (!s.MaliciousServer) return p;
        // Malicious-server variant: signed, the graph seed joint (derived from the signed advertisements), t at least the floor.
        p = p with { RequireSignatures = true, GraphSeed = [] };
        var floor = p.MaliciousThresholdFloor();
        if (s.Threshold > 0 && s.Threshold < floor)
            throw new RoundRefusedException("Threshold below the active-server floor",
                $"secureAggregation.threshold {s.Threshold} lets an active server reconstruct both secrets of a client; with {p.BuildGraph().Degree + 1} share holders it must be at least {floor} (t > 2m/3).");
        if (p.Threshold < floor) p = p with { Threshold = floor };
        // With three clients the floor is all three (no dropout tolerated); four are the fewest that survive one dropout.
        return p;
    }

    /// <summary>Phases of a secure stage, in order (honest-but-curious server).</summary>
    public static IReadOnlyList<RoundPhase> SecurePhases { get; } = [RoundPhase.AdvertiseKeys, RoundPhase.ShareKeys, RoundPhase.MaskedInput, RoundPhase.Unmasking];

    /// <summary>Phases of a secure stage of the malicious-server variant: the consistency check sits before Unmasking.</summary>
    public static IReadOnlyList<RoundPhase> MaliciousSecurePhases { get; } =
        [RoundPhase.AdvertiseKeys, RoundPhase.ShareKeys, RoundPhase.MaskedInput, RoundPhase.ConsistencyCheck, RoundPhase.Unmasking];

    /// <summary>The phases a stage with these parameters runs.</summary>
    public static IReadOnlyList<RoundPhase> PhasesOf(SecAggRoundParameters? parameters) =>
        parameters is { RequireSignatures: true } ? MaliciousSecurePhases : SecurePhases;

    /// <summary>
    /// Who made a phase: every expected client whose arrival event the orchestration recorded or whose message the
    /// server stored before the phase closed. The two differ when the engine delivers an arrival after the deadline
    /// timer (the timer was queued when the phase opened, so it sorts first in a late batch) or when an event was lost
    /// after its message was stored; a message the server accepted before it closed the phase always counts.
    /// </summary>
    /// <param name="expected">Ids expected in the phase.</param>
    /// <param name="recorded">Ids whose arrival events the orchestration recorded.</param>
    /// <param name="stored">Whether the server holds the phase message of an id (read at close time).</param>
    public static int[] ArrivalsAtClose(IEnumerable<int> expected, IEnumerable<int> recorded, Func<int, bool> stored)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(recorded);
        ArgumentNullException.ThrowIfNull(stored);
        var seen = new HashSet<int>(recorded);
        return expected.Distinct().Where(id => seen.Contains(id) || stored(id)).Order().ToArray();
    }

    /// <summary>
    /// Closes <paramref name="phase"/> of a secure stage: a fresh <see cref="SecAggServer"/> receives the
    /// stored messages of every earlier phase's recorded arrivals (in id order) and closes those phases
    /// again, then receives this phase's arrivals and closes it. The same arrivals always give the same
    /// answer (the server is deterministic), so a retried activity repeats itself exactly.
    /// </summary>
    /// <param name="parameters">The stage's parameters.</param>
    /// <param name="phase">The phase to close.</param>
    /// <param name="arrivals">Who made each phase so far.</param>
    /// <param name="messages">The stored messages.</param>
    /// <param name="verificationKeys">Malicious-server variant: the PKI (<see cref="RoundPlan.VerificationKeys"/>).</param>
    /// <param name="context">Malicious-server variant: <see cref="SecAggSigningContext.Of"/> of the stage.</param>
    public static PhaseCloseResult ClosePhase(SecAggRoundParameters parameters, RoundPhase phase, StageArrivals arrivals, IRoundMessageSource messages,
        IReadOnlyDictionary<int, byte[]>? verificationKeys = null, byte[]? context = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(arrivals);
        ArgumentNullException.ThrowIfNull(messages);
        var server = new SecAggServer(parameters, verificationKeys, context);
        var expected = parameters.ClientIds.Order().ToArray();
        IReadOnlyDictionary<int, KeysBroadcast>? keys = null;
        IReadOnlyDictionary<int, ForwardedShares>? shares = null;
        UnmaskRequest? unmask = null;
        foreach (var current in PhasesOf(parameters))
        {
            var arrived = new HashSet<int>(arrivals.Of(current));
            foreach (var id in expected)
            {
                if (!arrived.Contains(id)) continue;
                _ = current switch
                {
                    RoundPhase.AdvertiseKeys => messages.AdvertiseKeys(id) is { } m && m.ClientId == id ? server.ReceiveAdvertiseKeys(m) : null,
                    RoundPhase.ShareKeys => messages.ShareKeys(id) is { } m && m.ClientId == id ? server.ReceiveShareKeys(m) : null,
                    RoundPhase.MaskedInput => messages.MaskedInput(id) is { } m && m.ClientId == id ? server.ReceiveMaskedInput(m) : null,
                    RoundPhase.ConsistencyCheck => messages.ConsistencyCheck(id) is { } m && m.ClientId == id ? server.ReceiveConsistencySignature(m) : null,
                    _ => messages.Unmasking(id) is { } m && m.ClientId == id ? server.ReceiveUnmaskResponse(m) : null,
                };
            }
            try
            {
                int[] next;
                switch (current)
                {
                    case RoundPhase.AdvertiseKeys:
                        keys = server.CloseAdvertiseKeys();
                        next = keys.Keys.Order().ToArray();
                        break;
                    case RoundPhase.ShareKeys:
                        shares = server.CloseShareKeys();
                        next = shares.Keys.Order().ToArray();
                        break;
                    case RoundPhase.MaskedInput:
                        unmask = server.CloseMaskedInput();
                        next = unmask.Survivors.Order().ToArray();
                        break;
                    case RoundPhase.ConsistencyCheck:
                        unmask = server.CloseConsistencyCheck();
                        next = unmask.Signatures!.Select(x => x.ClientId).Order().ToArray();
                        break;
                    default:
                        var result = server.Finish();
                        next = [];
                        if (current == phase)
                            return new PhaseCloseResult(phase, next, expected.Except(arrived).ToArray(), server.Exclusions.ToArray(), null, null, null, null, result);
                        break;
                }
                if (current == phase)
                {
                    var dropped = expected.Where(id => !next.Contains(id)).ToArray();
                    return new PhaseCloseResult(phase, next, dropped, server.Exclusions.ToArray(), null,
                        phase == RoundPhase.AdvertiseKeys ? keys : null, phase == RoundPhase.ShareKeys ? shares : null, phase is RoundPhase.MaskedInput or RoundPhase.ConsistencyCheck ? unmask : null, null);
                }
                expected = next;
            }
            catch (SecAggAbortedException e)
            {
                return new PhaseCloseResult(current, [], expected.Except(arrived).ToArray(), server.Exclusions.ToArray(), e.Message, null, null, null, null);
            }
        }
        throw new ArgumentOutOfRangeException(nameof(phase), phase, "not a secure-aggregation phase");
    }

    /// <summary>
    /// What a selected client is asked to compute in the statistics stage: the columns, the encoding and, with privacy on,
    /// the mechanism (public ranges, z) whose noise share the client adds before masking.
    /// </summary>
    public static StatisticsTask StatisticsTaskOf(RoundPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new StatisticsTask(plan.StatisticsColumns, StatisticsFractionBits, plan.StatisticsPrivacy);
    }

    /// <summary>
    /// The federation's preprocessor from the securely aggregated statistics: with privacy on, the noised bounded sums of
    /// <see cref="StatisticsMechanism"/> (post-processing only; charge the release with <see cref="ChargeStatistics"/> before
    /// the sum is stored), else the exact FeatureSums.
    /// </summary>
    public static Preprocessor PreprocessorFromSum(RoundPlan plan, ReadOnlySpan<uint> sum)
    {
        ArgumentNullException.ThrowIfNull(plan);
        FeatureStatistics stats;
        if (plan.StatisticsPrivacy is { } mechanism)
        {
            if (sum.Length != StatisticsEncoding.VectorLength(plan.StatisticsColumns.Length))
                throw new ArgumentException($"Expected {StatisticsEncoding.VectorLength(plan.StatisticsColumns.Length)} ring entries, got {sum.Length}.", nameof(sum));
            // At most every selected client's share is in the sum: the largest noise the release can carry sets the variance floor.
            stats = mechanism.Release(plan.StatisticsColumns, StatisticsEncoding.Decode(sum, StatisticsFractionBits),
                sumNoiseStd: mechanism.TargetStd * Math.Sqrt(plan.Selected.Length));
        }
        else
        {
            stats = FeatureStatistics.FromSums(StatisticsEncoding.DecodeSums(plan.StatisticsColumns, sum, StatisticsFractionBits));
        }
        return new Preprocessor(FederationRules.SchemaOf(plan.Config), stats, plan.Config.Model.Steps).Validated();
    }

    /// <summary>The initial model (v0) of a federation.</summary>
    public static ModelCheckpoint InitialCheckpoint(FederationConfig config, Preprocessor preprocessor)
    {
        ArgumentNullException.ThrowIfNull(config);
        var modelConfig = FederationRules.ModelConfigOf(config);
        var parameters = new CnnLstm(modelConfig).InitializeParameters(config.Model.InitSeed);
        return new ModelCheckpoint(modelConfig, preprocessor, parameters).Validated();
    }

    /// <summary>
    /// Secure training stage: decodes the sum into the weighted mean delta and applies it. The server
    /// sees only the sum, so its check is on the aggregate: the mean of contributions clipped to S has
    /// norm at most S, plus the distributed noise's norm; a larger aggregate means some client did not
    /// clip (a poisoning attempt) and the version is rejected (<see cref="AggregationOutcome.NormViolation"/>).
    /// </summary>
    public static AggregationOutcome AggregateSecure(RoundPlan plan, float[] baseParameters, SecAggResult result)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(baseParameters);
        ArgumentNullException.ThrowIfNull(result);
        var encoding = plan.Encoding ?? throw new InvalidOperationException("The plan has no ring encoding (secure aggregation is off).");
        if (baseParameters.Length != encoding.ParameterCount) throw new InvalidDataException($"The base model has {baseParameters.Length} parameters, the round {encoding.ParameterCount}.");
        var (mean, totalWeight) = UpdateEncoding.Decode(result.Sum, encoding);
        var contributors = result.Included.Length;
        var norm = GaussianMechanism.Norm(mean);
        var metrics = new Dictionary<string, double>
        {
            ["updateNorm"] = norm,
            ["totalWeight"] = totalWeight,
            ["contributors"] = contributors,
        };
        string? violation = null;
        if (!(totalWeight > 0.5 / encoding.MaxClients) || !float.IsFinite((float)norm))
        {
            violation = $"the decoded total weight {totalWeight:G4} is not positive: the sum is corrupt";
        }
        else if (plan.Fit.ClipNorm > 0)
        {
            var meanNoise = plan.Fit.NoiseStd * Math.Sqrt(contributors) / totalWeight;
            var bound = plan.Fit.ClipNorm + meanNoise * (Math.Sqrt(mean.Length) + 4) + 1e-6;
            metrics["normBound"] = bound;
            if (norm > bound)
                violation = $"aggregate update norm {norm:G4} exceeds {bound:G4}, the most that contributions clipped to {plan.Fit.ClipNorm:G4} (plus noise) can produce: a client did not clip";
        }
        var parameters = (float[])baseParameters.Clone();
        if (violation is null)
            for (var i = 0; i < parameters.Length; i++) parameters[i] += mean[i];
        return new AggregationOutcome(parameters, metrics, [], violation, contributors);
    }

    /// <summary>
    /// Plain training stage (secure aggregation off): the server sees each update, so it enforces the
    /// clip itself, screens with <see cref="AnomalyDetector"/> (three or more updates; not under central DP,
    /// where the screen would change the sensitivity the noise is calibrated for), averages
    /// (weights min(1, examples / WeightCap), or 1 under DP) and adds central Gaussian noise to the sum.
    /// </summary>
    /// <param name="plan">The round.</param>
    /// <param name="baseParameters">Global parameters the clients trained from.</param>
    /// <param name="updates">(client id, frame, examples), in a fixed order.</param>
    /// <param name="noise">Noise source (<see cref="CryptoRandom"/> in production).</param>
    public static AggregationOutcome AggregatePlain(RoundPlan plan, float[] baseParameters, IReadOnlyList<(string ClientId, byte[] Frame, int Examples)> updates, Random noise)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(baseParameters);
        ArgumentNullException.ThrowIfNull(updates);
        ArgumentNullException.ThrowIfNull(noise);
        var excluded = new List<RoundExcludedClient>();
        var accepted = new List<(string Id, float[] Delta, double Weight)>();
        foreach (var (id, frame, examples) in updates)
        {
            float[] delta;
            try { delta = UpdateFrame.DecodeToDense(frame, baseParameters.Length); }
            catch (FrameFormatException e) { excluded.Add(new RoundExcludedClient(id, RoundStages.Training, $"update frame: {e.Message}")); continue; }
            if (delta.Length != baseParameters.Length) { excluded.Add(new RoundExcludedClient(id, RoundStages.Training, $"update has {delta.Length} entries, the model {baseParameters.Length}")); continue; }
            if (examples < 1) { excluded.Add(new RoundExcludedClient(id, RoundStages.Training, $"example count {examples} is not positive")); continue; }
            var finite = true;
            foreach (var v in delta) if (!float.IsFinite(v)) { finite = false; break; }
            if (!finite) { excluded.Add(new RoundExcludedClient(id, RoundStages.Training, "update holds NaN or infinity")); continue; }
            var weight = plan.Fit.UniformWeight || plan.Config.Training.WeightCap == 0 ? 1.0 : Math.Min(1.0, (double)examples / plan.Config.Training.WeightCap);
            accepted.Add((id, delta, weight));
        }
        var metrics = new Dictionary<string, double>();
        // Under central DP the screen would decide, from everyone's data, whose update is dropped before the
        // noise: removing one client could then drop or keep others, the sum's sensitivity is no longer S and
        // the reported epsilon would not hold. So with noise only what the clip bounds is screened: the
        // per-client checks above (each depends on that client alone) and the clip itself, which limits any
        // update, a poisoned one included, to norm S. Without DP the anomaly detector runs as before.
        var screen = !(plan.CentralNoiseStd > 0);
        metrics["screened"] = screen ? 1 : 0;
        if (screen && accepted.Count >= 3)
        {
            var scores = AnomalyDetector.Score(accepted.Select(a => a.Delta).ToArray(), new AnomalyOptions());
            var keep = new List<(string, float[], double)>();
            for (var i = 0; i < accepted.Count; i++)
            {
                if (scores[i].Flagged) excluded.Add(new RoundExcludedClient(accepted[i].Id, RoundStages.Training, "anomaly detector: " + scores[i].Reason));
                else keep.Add(accepted[i]);
            }
            metrics["flagged"] = accepted.Count - keep.Count;
            accepted = keep;
        }
        if (accepted.Count == 0)
            return new AggregationOutcome((float[])baseParameters.Clone(), metrics, excluded.ToArray(), "no update survived validation and screening", 0);
        var clip = plan.Fit.ClipNorm;
        var sum = new double[baseParameters.Length];
        double totalWeight = 0;
        foreach (var (_, delta, weight) in accepted)
        {
            if (clip > 0) GaussianMechanism.ClipL2(delta, clip);
            for (var i = 0; i < sum.Length; i++) sum[i] += weight * delta[i];
            totalWeight += weight;
        }
        var noisy = new float[sum.Length];
        for (var i = 0; i < sum.Length; i++) noisy[i] = (float)sum[i];
        GaussianMechanism.AddGaussianNoise(noisy, plan.CentralNoiseStd, noise);
        var parameters = (float[])baseParameters.Clone();
        for (var i = 0; i < parameters.Length; i++) parameters[i] += (float)(noisy[i] / totalWeight);
        var mean = new float[sum.Length];
        for (var i = 0; i < mean.Length; i++) mean[i] = (float)(noisy[i] / totalWeight);
        metrics["updateNorm"] = GaussianMechanism.Norm(mean);
        metrics["totalWeight"] = totalWeight;
        metrics["contributors"] = accepted.Count;
        return new AggregationOutcome(parameters, metrics, excluded.ToArray(), null, accepted.Count);
    }

    /// <summary>
    /// Hold-out metrics (auroc, accuracy, logLoss, holdoutPatients) of the exported model file on the operator's
    /// patients, scored in ONNX Runtime: the promotion gate judges exactly the file that is served and audited.
    /// </summary>
    public static Dictionary<string, double> Evaluate(byte[] onnx, Preprocessor preprocessor, IReadOnlyList<PatientRecord> holdOut)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(holdOut);
        var data = preprocessor.Transform(holdOut);
        using var scorer = OnnxScorer.Load(onnx);
        var report = Metrics.FromProbabilities(scorer.Predict(data), data.Labels, data.Classes);
        return new Dictionary<string, double>
        {
            ["auroc"] = report.Auroc,
            ["accuracy"] = report.Accuracy,
            ["logLoss"] = report.LogLoss,
            ["holdoutPatients"] = report.Count,
        };
    }

    /// <summary>
    /// The promotion gate: a version that failed the norm check never passes; otherwise, with hold-out
    /// metrics for both, the candidate's AUROC may be at most <c>MaxAurocDrop</c> below the current one's.
    /// </summary>
    public static (bool Passed, string Reason) Gate(FederationPromotion promotion, string? normViolation, double? candidateAuroc, double? currentAuroc)
    {
        ArgumentNullException.ThrowIfNull(promotion);
        if (normViolation is not null) return (false, "rejected: " + normViolation);
        if (candidateAuroc is null) return (true, "passed: no hold-out set to evaluate on");
        if (double.IsNaN(candidateAuroc.Value)) return (false, "rejected: hold-out AUROC is undefined");
        if (currentAuroc is null || double.IsNaN(currentAuroc.Value)) return (true, $"passed: hold-out AUROC {candidateAuroc:F4} (no earlier figure to compare)");
        var drop = currentAuroc.Value - candidateAuroc.Value;
        return drop > promotion.MaxAurocDrop
            ? (false, $"rejected: hold-out AUROC {candidateAuroc:F4} is {drop:F4} below the current version's {currentAuroc:F4} (allowed drop {promotion.MaxAurocDrop:F4})")
            : (true, $"passed: hold-out AUROC {candidateAuroc:F4} vs current {currentAuroc:F4} (allowed drop {promotion.MaxAurocDrop:F4})");
    }

    /// <summary>
    /// Charges one round's training step to the accountant (once per round number). A round whose statistics release is not
    /// accounted yet (<see cref="ChargeStatistics"/> was not called before its sum was stored) pays for it here as well, so
    /// no release goes uncharged.
    /// </summary>
    public static FederationState Charge(FederationState state, RoundPlan plan)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(plan);
        state = ChargeStatistics(state, plan);
        if (!plan.Config.Privacy.Enabled || state.AccountedRounds.Contains(plan.Round)) return state;
        return Spend(state, plan, plan.SamplingRate, plan.Config.Privacy.NoiseMultiplier) with { AccountedRounds = [.. state.AccountedRounds, plan.Round] };
    }

    /// <summary>
    /// Charges the round's statistics release to the accountant: one Gaussian step at q = 1 and z =
    /// <see cref="StatisticsMechanism.NoiseMultiplier"/>, composed with the training rounds in RDP. Call it before the
    /// statistics sum is stored for anyone to read; once per round (a retried close charges nothing); a no-op when the
    /// plan has no private statistics stage.
    /// </summary>
    public static FederationState ChargeStatistics(FederationState state, RoundPlan plan)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(plan);
        if (!plan.Config.Privacy.Enabled || plan.StatisticsPrivacy is not { } mechanism || plan.StageOf(RoundStages.Statistics) is null
            || state.AccountedStatistics.Contains(plan.Round)) return state;
        return Spend(state, plan, 1.0, mechanism.NoiseMultiplier) with { AccountedStatistics = [.. state.AccountedStatistics, plan.Round] };
    }

    private static FederationState Spend(FederationState state, RoundPlan plan, double q, double z)
    {
        // The round was admitted against the budget when it started; what it spent is spent even if the
        // operator lowered the budget meanwhile, so the charge itself is never refused.
        // The operator may have tightened delta since the round started (never loosened: PrivacySettingsRules); report at the tighter one.
        var delta = Math.Min(plan.Config.Privacy.Delta, state.Config.Privacy.Delta);
        var budget = state.Accountant is { } a ? new PrivacyBudget(double.MaxValue, delta, a.Orders, a.RdpSpent) : new PrivacyBudget(double.MaxValue, delta);
        budget.Spend(q, z);
        var steps = (state.Accountant?.Steps ?? 0) + 1;
        return state with { Accountant = new AccountantState(budget.Orders.ToArray(), budget.RdpSpent.ToArray(), steps, budget.EpsilonSpent) };
    }
}
