namespace Serverless.Federation.Rounds;

// What the server persists about a federation and a round (JSON in the blob store). Every field a
// later step needs is here, so no step depends on process memory.

/// <summary>An enrolled client, bound to its certificate.</summary>
/// <param name="ClientId">Certificate CN.</param>
/// <param name="SecAggId">Positive, distinct within the federation.</param>
/// <param name="CertificateThumbprint">SHA-256 thumbprint (lower-case hex).</param>
/// <param name="EnrolledAt">First enrollment.</param>
/// <param name="CertificatePem">The enrolled certificate (PEM): its key signs the client's secure-aggregation messages (added 2026-12-03; null for older enrolments, which must enroll again to join a malicious-server round).</param>
public sealed record EnrolledClient(string ClientId, int SecAggId, string CertificateThumbprint, DateTimeOffset EnrolledAt, string? CertificatePem = null);

/// <summary>The privacy accountant's state: the RDP curve spent, at fixed orders.</summary>
public sealed record AccountantState(double[] Orders, double[] RdpSpent, long Steps, double EpsilonSpent);

/// <summary>The mutable state of a federation (one blob, updated with ETag conditions).</summary>
public sealed record FederationState
{
    /// <summary>The configuration.</summary>
    public required FederationConfig Config { get; init; }

    /// <summary>When the federation was created.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Enrolled clients.</summary>
    public EnrolledClient[] Clients { get; init; } = [];

    /// <summary>Clients an operator removed: their certificates are revoked for this federation, and their SecAgg ids are never reused.</summary>
    public EnrolledClient[] Removed { get; init; } = [];

    /// <summary>The fitted preprocessor (JSON), once the statistics stage has run.</summary>
    public string? PreprocessorJson { get; init; }

    /// <summary>Privacy spent (null before the first DP round).</summary>
    public AccountantState? Accountant { get; init; }

    /// <summary>Rounds whose privacy cost is in <see cref="Accountant"/> (so a retried commit charges once).</summary>
    public int[] AccountedRounds { get; init; } = [];

    /// <summary>Rounds whose statistics release is in <see cref="Accountant"/> (charged once each, before the sum is stored; added 2026-12-04).</summary>
    public int[] AccountedStatistics { get; init; } = [];

    /// <summary>Model versions, oldest first.</summary>
    public ModelVersionInfo[] Versions { get; init; } = [];

    /// <summary>The promoted version.</summary>
    public string? CurrentVersion { get; init; }

    /// <summary>Versions promoted before the current one, most recent last (rollback pops).</summary>
    public string[] PromotionHistory { get; init; } = [];

    /// <summary>Number of the last round started.</summary>
    public int LastRound { get; init; }

    /// <summary>Rounds that completed.</summary>
    public int RoundsCompleted { get; init; }

    /// <summary>Next occurrence of the federation's schedule (null when unscheduled or not yet computed).</summary>
    public DateTimeOffset? NextScheduledRun { get; init; }

    /// <summary>Epsilon spent (0 without DP rounds).</summary>
    public double EpsilonSpent => Accountant?.EpsilonSpent ?? 0;

    /// <summary>A view for clients of the API.</summary>
    public FederationView ToView() => new(Config, Clients.Select(c => c.ClientId).ToArray(), PreprocessorJson is not null, CurrentVersion,
        RoundsCompleted, LastRound, EpsilonSpent, Config.Privacy.Enabled ? Config.Privacy.EpsilonBudget : 0);
}

/// <summary>A selected client of a round; <paramref name="CertificatePem"/> is its enrolled certificate (the malicious-server variant's PKI).</summary>
public sealed record PlannedClient(string ClientId, int SecAggId, string? CertificatePem = null);

/// <summary>One secure aggregation (or plain upload) of a round.</summary>
/// <param name="Stage">statistics or training.</param>
/// <param name="Secure">Runs the four SecAgg phases (else one Upload phase).</param>
/// <param name="Parameters">SecAgg parameters (null when not secure).</param>
public sealed record RoundStagePlan(string Stage, bool Secure, SecAggRoundParameters? Parameters);

/// <summary>Everything fixed when a round starts (written once; the orchestration and the endpoints read it).</summary>
public sealed record RoundPlan
{
    /// <summary>Federation id.</summary>
    public required string Federation { get; init; }

    /// <summary>Round number.</summary>
    public required int Round { get; init; }

    /// <summary>The configuration the round runs with (later edits do not affect it).</summary>
    public required FederationConfig Config { get; init; }

    /// <summary>Selected clients.</summary>
    public required PlannedClient[] Selected { get; init; }

    /// <summary>Enrolled clients when the round started (the DP sampling population).</summary>
    public required int Population { get; init; }

    /// <summary>Stages in order.</summary>
    public required RoundStagePlan[] Stages { get; init; }

    /// <summary>The version the training stage starts from (<c>v0</c> when the statistics stage creates it).</summary>
    public required string BaseVersion { get; init; }

    /// <summary>Local training of the training stage.</summary>
    public required FitConfig Fit { get; init; }

    /// <summary>Training update ring encoding (secure training stage), else null.</summary>
    public UpdateRingEncoding? Encoding { get; init; }

    /// <summary>Numeric columns of the statistics stage.</summary>
    public required string[] StatisticsColumns { get; init; }

    /// <summary>
    /// The statistics stage's Gaussian mechanism (public ranges, z) when privacy is on; null: exact sums (privacy off, or a plan
    /// written before 2026-12-04).
    /// </summary>
    public StatisticsMechanism? StatisticsPrivacy { get; init; }

    /// <summary>Sampling rate q the accountant is charged at (<see cref="RoundCoordinator.AccountedSamplingRate"/>: 1 while selection is fixed-size).</summary>
    public required double SamplingRate { get; init; }

    /// <summary>Std of the Gaussian noise the server adds to the sum (central DP: secure aggregation off), else 0.</summary>
    public required double CentralNoiseStd { get; init; }

    /// <summary>Survivors the distributed noise is calibrated for (t_min); the round fails below it.</summary>
    public required int MinSurvivors { get; init; }

    /// <summary>When the plan was made.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Who started the round (user id or "platform" for the schedule).</summary>
    public required string StartedBy { get; init; }

    /// <summary>The stage plan by name.</summary>
    public RoundStagePlan? StageOf(string stage) => Stages.FirstOrDefault(s => s.Stage == stage);

    /// <summary>The client with a SecAgg id.</summary>
    public PlannedClient? ClientBySecAggId(int id) => Selected.FirstOrDefault(c => c.SecAggId == id);

    /// <summary>The client with a client id.</summary>
    public PlannedClient? ClientById(string clientId) => Selected.FirstOrDefault(c => c.ClientId == clientId);

    /// <summary>The PKI of the malicious-server variant: SecAgg id to the public key of its enrolled certificate.</summary>
    public IReadOnlyDictionary<int, byte[]> VerificationKeys()
    {
        var keys = new Dictionary<int, byte[]>();
        foreach (var c in Selected)
            if (SecAggSigningContext.SigningKeyOf(c.CertificatePem) is { } spki) keys[c.SecAggId] = spki;
        return keys;
    }

    /// <summary>The selected clients as the agents see them (for their own check against their trust anchor).</summary>
    public RoundPeer[] Peers() => Selected.Where(c => c.CertificatePem is not null).Select(c => new RoundPeer(c.SecAggId, c.ClientId, c.CertificatePem!)).ToArray();
}

/// <summary>The orchestration's view of a round, published as its custom status (small: ids and figures).</summary>
public sealed record RoundProgress
{
    /// <summary>Current phase.</summary>
    public RoundPhase Phase { get; init; }

    /// <summary>Current stage.</summary>
    public string Stage { get; init; } = RoundStages.Training;

    /// <summary>When the open phase closes.</summary>
    public DateTimeOffset? Deadline { get; init; }

    /// <summary>SecAgg ids still in the current stage (expected to answer the open phase).</summary>
    public int[] Active { get; init; } = [];

    /// <summary>Client ids selected.</summary>
    public string[] Selected { get; init; } = [];

    /// <summary>Client ids that answered at least one phase.</summary>
    public string[] Seen { get; init; } = [];

    /// <summary>Dropouts so far.</summary>
    public RoundDropout[] Dropouts { get; init; } = [];

    /// <summary>Exclusions so far.</summary>
    public RoundExcludedClient[] Excluded { get; init; } = [];

    /// <summary>Metrics (set when aggregating is done).</summary>
    public Dictionary<string, double> Metrics { get; init; } = [];

    /// <summary>Epsilon after the round (or before it while running).</summary>
    public double EpsilonSpent { get; init; }

    /// <summary>Base version.</summary>
    public string? BaseVersion { get; init; }

    /// <summary>Version written.</summary>
    public string? NewVersion { get; init; }

    /// <summary>Whether it was promoted.</summary>
    public bool Promoted { get; init; }

    /// <summary>Failure, refusal or gate reason.</summary>
    public string? Reason { get; init; }

    /// <summary>The round's W3C trace context (<c>traceparent</c>): agents put their spans of the round in its trace. Ids only.</summary>
    public string? TraceParent { get; init; }
}
