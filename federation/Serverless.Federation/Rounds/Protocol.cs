using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serverless.Federation.Rounds;

// The wire protocol between the hospital agent and the federation server (docs/rounds.md,
// "Protocol"). Every body is one of these records, serialized with RoundJson.Options. Changes after
// the first published version are additive only (new optional members, new endpoints).

/// <summary>The JSON settings both sides use: web defaults (camelCase, case-insensitive), enums as strings (numbers accepted).</summary>
public static class RoundJson
{
    /// <summary>Shared serializer options; do not mutate.</summary>
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        o.Converters.Add(new JsonStringEnumConverter());
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}

/// <summary>The two secure aggregations a round may run.</summary>
public static class RoundStages
{
    /// <summary>Federated standardization statistics (FeatureSums), once, before the federation's first training.</summary>
    public const string Statistics = "statistics";

    /// <summary>The model update.</summary>
    public const string Training = "training";

    /// <summary>True for a known stage name.</summary>
    public static bool IsKnown(string? stage) => stage is Statistics or Training;
}

/// <summary>Where a round is.</summary>
public enum RoundPhase
{
    /// <summary>Loading the checkpoint, checking the budget, selecting clients.</summary>
    Starting = 0,

    /// <summary>SecAgg round 0: selected clients post their two public keys.</summary>
    AdvertiseKeys = 1,

    /// <summary>SecAgg round 1: clients post encrypted Shamir shares for their neighbours.</summary>
    ShareKeys = 2,

    /// <summary>SecAgg round 2: clients post the masked input (statistics, or the clipped, noised, encoded update).</summary>
    MaskedInput = 3,

    /// <summary>
    /// Malicious-server variant (added 2026-12-03, issue 20): clients sign the survivor set U3 (Bonawitz et al. 2017,
    /// Figure 4, ConsistencyCheck) before anyone reveals a share. Numbered in protocol order: later phases moved up by one.
    /// </summary>
    ConsistencyCheck = 4,

    /// <summary>SecAgg round 3 (4 with the consistency check): clients reveal the shares the server asks for.</summary>
    Unmasking = 5,

    /// <summary>Secure aggregation off: clients post their update in the clear (an UpdateFrame).</summary>
    Upload = 6,

    /// <summary>Aggregation, robust checks, evaluation, promotion gate, checkpoint, ONNX, accountant.</summary>
    Aggregating = 7,

    /// <summary>Finished; a new model version exists (promoted or not).</summary>
    Completed = 8,

    /// <summary>The round could not finish (too few clients survived, a secret could not be reconstructed, ...).</summary>
    Failed = 9,

    /// <summary>The round was refused before any client was asked (privacy budget, too few enrolled clients).</summary>
    Refused = 10,
}

/// <summary>What a polling agent should do now.</summary>
public enum ClientAction
{
    /// <summary>Nothing to do yet (phase not open for you, or your message is in): poll again.</summary>
    Wait = 0,

    /// <summary>The phase in <see cref="ClientTask.Phase"/> is open and expects your message.</summary>
    Act = 1,

    /// <summary>The round is over for you (finished, failed, or you were excluded or dropped).</summary>
    Done = 2,

    /// <summary>You are not selected in this round.</summary>
    NotSelected = 3,
}

// ------------------------------------------------------------------ federation configuration

/// <summary>Model shape; the number of input features follows from the schema and the preprocessor.</summary>
public sealed record FederationModel
{
    /// <summary>Visits per sequence.</summary>
    public int Steps { get; init; } = 8;

    /// <summary>Architecture.</summary>
    public ArchitectureKind Architecture { get; init; } = ArchitectureKind.CnnLstm;

    /// <summary>Convolution channels.</summary>
    public int ConvChannels { get; init; } = 8;

    /// <summary>Causal kernel over visits.</summary>
    public int KernelSize { get; init; } = 3;

    /// <summary>LSTM units.</summary>
    public int LstmHidden { get; init; } = 8;

    /// <summary>Hidden dense layer in the head (0 = none).</summary>
    public int HeadHidden { get; init; }

    /// <summary>Seed of the initial parameters.</summary>
    public int InitSeed { get; init; } = 1;
}

/// <summary>Local training every selected client performs.</summary>
public sealed record FederationTraining
{
    /// <summary>Local epochs per round.</summary>
    public int LocalEpochs { get; init; } = 1;

    /// <summary>Local learning rate.</summary>
    public double LearningRate { get; init; } = 0.01;

    /// <summary>FedProx mu (0 = FedAvg).</summary>
    public double ProximalMu { get; init; } = 0.01;

    /// <summary>Local mini-batch size.</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>Secure aggregation off and no DP: weight an update by min(1, examples / WeightCap); 0 = every update weighs 1.</summary>
    public int WeightCap { get; init; }
}

/// <summary>Client-level differential privacy (DP-FedAvg): clip each update to ClipNorm, Gaussian noise of std NoiseMultiplier * ClipNorm on the sum.</summary>
public sealed record FederationPrivacy
{
    /// <summary>False: no noise, no accountant (clipping still applies when ClipNorm &gt; 0).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Total epsilon the federation may spend.</summary>
    public double EpsilonBudget { get; init; } = 8;

    /// <summary>Delta of the (epsilon, delta) guarantee.</summary>
    public double Delta { get; init; } = 1e-5;

    /// <summary>z: noise std on the sum = z * ClipNorm.</summary>
    public double NoiseMultiplier { get; init; } = 1.0;

    /// <summary>S: each client clips its update (delta) to this L2 norm; with DP off, 0 = no clipping.</summary>
    public double ClipNorm { get; init; } = 0.5;

    /// <summary>
    /// z of the statistics stage (added 2026-12-04, issue 20; decision 0023): the standardization sums carry Gaussian noise
    /// of std z times their L2 sensitivity for one patient (<see cref="StatisticsMechanism.L2Sensitivity"/>), and the release is
    /// charged to the accountant as one Gaussian step at this z. Larger than the training z because the sums tolerate noise: at
    /// 4 the release costs 1/16 of a full-participation round at z = 1 in RDP, and moves a mean over 2,000 patients by about 1 %
    /// of its public range.
    /// </summary>
    public double StatisticsNoiseMultiplier { get; init; } = 4.0;

    /// <summary>
    /// Public bounds of the numeric columns (column name to [lower, upper]), to which every value is clipped before it enters the
    /// statistics, so one patient's contribution is bounded whatever its values. Columns not named here take
    /// <see cref="StatisticsMechanism.DefaultRanges"/> (the generator's and cohort CSV schema); with privacy on, a numeric column
    /// without either is a configuration error. Ranges are public: they must come from clinical knowledge, never from the data.
    /// </summary>
    public Dictionary<string, StatisticsRange>? StatisticsRanges { get; init; }
}

/// <summary>Secure aggregation settings.</summary>
public sealed record FederationSecureAggregation
{
    /// <summary>Off: updates are uploaded in the clear and screened by the anomaly detector (central DP noise if DP is on).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>
    /// t = floor(fraction * neighbourhood) + 1 shares reconstruct a secret; with <see cref="MaliciousServer"/> raised to the floor
    /// t &gt; 2m/3 (m = share holders of one client) when the fraction gives less.
    /// </summary>
    public double ThresholdFraction { get; init; } = 0.5;

    /// <summary>Explicit threshold t (0 = from <see cref="ThresholdFraction"/>); with <see cref="MaliciousServer"/>, a round whose t is below the floor is refused.</summary>
    public int Threshold { get; init; }

    /// <summary>
    /// The variant that holds against an active server (Bonawitz et al. 2017 with signatures; added 2026-12-03, issue 20, on by
    /// default): advertised keys signed with each client's enrolled certificate key, a consistency check round over the survivor
    /// set, the threshold floor (checked by the clients too) and a joint SecAgg+ graph seed. The reference agent refuses rounds
    /// without it unless run with <c>--allow-honest-but-curious-server</c>. Off only for measurements against the older protocol.
    /// </summary>
    public bool MaliciousServer { get; init; } = true;

    /// <summary>Ring width k of the training update (8..32) when <see cref="QuantizationBits"/> is 0.</summary>
    public int RingBits { get; init; } = 32;

    /// <summary>
    /// b: each client's update is stochastically quantized to b bits before masking, in a ring of b + ceil(log2 n) bits
    /// (n = the round's clients), just wide enough for the sum not to wrap; 0 = the fixed <see cref="RingBits"/>.
    /// Added 2026-12-03 (issue 14); the masked vector is the bulk of the bytes a client sends. Default 7 since 2026-12-07, in
    /// the finer coordinate range of <see cref="RoundCoordinator.CoordinateBound"/> (was 8 over ±S).
    /// </summary>
    public int QuantizationBits { get; init; } = 7;

    /// <summary>SecAgg+ (sparse neighbour graph) instead of the complete graph.</summary>
    public bool SecAggPlus { get; init; }
}

/// <summary>How long each phase stays open. A client that has not answered when its phase closes has dropped out.</summary>
public sealed record FederationDeadlines
{
    /// <summary>Key advertisement (also covers the agent noticing the round).</summary>
    public TimeSpan AdvertiseKeys { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Share exchange.</summary>
    public TimeSpan ShareKeys { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Masked input (covers local training).</summary>
    public TimeSpan MaskedInput { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>Consistency check (malicious-server variant; added 2026-12-03).</summary>
    public TimeSpan ConsistencyCheck { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Unmasking.</summary>
    public TimeSpan Unmasking { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Plain upload (secure aggregation off; covers local training).</summary>
    public TimeSpan Upload { get; init; } = TimeSpan.FromSeconds(300);
}

/// <summary>When a new model version becomes the current one.</summary>
public sealed record FederationPromotion
{
    /// <summary>Promote automatically when the gate passes (else the operator promotes).</summary>
    public bool AutoPromote { get; init; } = true;

    /// <summary>Gate: refuse a version whose hold-out AUROC is lower than the current version's by more than this.</summary>
    public double MaxAurocDrop { get; init; } = 0.02;
}

/// <summary>A federation as the operator configures it (POST/PUT body). Omitted sections take their defaults.</summary>
public sealed record FederationConfig
{
    /// <summary>3-40 characters: lower-case letters, digits, single hyphens; starts with a letter.</summary>
    public string Id { get; init; } = "";

    /// <summary>Raw data schema the clients import into (null = the generator's / cohort CSV / FHIR schema).</summary>
    public FeatureSchema? Schema { get; init; }

    /// <summary>Model shape.</summary>
    public FederationModel Model { get; init; } = new();

    /// <summary>Local training.</summary>
    public FederationTraining Training { get; init; } = new();

    /// <summary>Differential privacy.</summary>
    public FederationPrivacy Privacy { get; init; } = new();

    /// <summary>Secure aggregation.</summary>
    public FederationSecureAggregation SecureAggregation { get; init; } = new();

    /// <summary>A round starts only with at least this many enrolled clients and completes only with at least this many survivors.</summary>
    public int MinClients { get; init; } = 3;

    /// <summary>Clients selected per round (0 = every enrolled client).</summary>
    public int ClientsPerRound { get; init; }

    /// <summary>Phase deadlines.</summary>
    public FederationDeadlines Deadlines { get; init; } = new();

    /// <summary>Six-field NCrontab schedule (UTC) of automatic rounds; null = manual only.</summary>
    public string? Schedule { get; init; }

    /// <summary>Blob name of the operator's hold-out set (cohort CSV), set by <c>PUT .../holdout</c>; null = no evaluation (the gate then passes).</summary>
    public string? HoldOut { get; init; }

    /// <summary>Promotion gate.</summary>
    public FederationPromotion Promotion { get; init; } = new();

    /// <summary>Client ids (certificate CN) allowed to enroll. Null or empty refuses every enrollment unless <see cref="OpenEnrollment"/> is set.</summary>
    public string[]? AllowedClients { get; init; }

    /// <summary>
    /// True: with no <see cref="AllowedClients"/>, any client certificate of the federation's CA may
    /// enroll (development and simulations). False (the default): an empty roster admits nobody, so a
    /// forgotten roster never lets every certificate of a shared CA join.
    /// </summary>
    public bool OpenEnrollment { get; init; }
}

/// <summary>A federation as the server reports it.</summary>
/// <param name="Config">The configuration.</param>
/// <param name="EnrolledClients">Enrolled client ids.</param>
/// <param name="StatisticsReady">Standardization statistics have been securely aggregated.</param>
/// <param name="CurrentVersion">The promoted model version (null before the first round).</param>
/// <param name="RoundsCompleted">Completed rounds.</param>
/// <param name="LastRound">Number of the last round started (0 = none).</param>
/// <param name="EpsilonSpent">Privacy spent so far.</param>
/// <param name="EpsilonBudget">The budget.</param>
public sealed record FederationView(FederationConfig Config, string[] EnrolledClients, bool StatisticsReady, string? CurrentVersion,
    int RoundsCompleted, int LastRound, double EpsilonSpent, double EpsilonBudget);

/// <summary>Answer of <c>PUT .../holdout</c>.</summary>
public sealed record HoldOutInfo(string Blob, int Patients, int Rejected);

// ------------------------------------------------------------------ enrollment

/// <summary>Answer of <c>POST .../enrollment/challenge</c>: a single-use nonce to sign.</summary>
public sealed record EnrollmentChallenge(string Nonce, DateTimeOffset ExpiresAt);

/// <summary>Enrollment: the client certificate (PEM) and an ECDSA P-256 / SHA-256 signature (IEEE P1363, r||s) by its key over <see cref="EnrollmentProof.SignedBytes"/>.</summary>
public sealed record EnrollmentRequest(string ClientId, string CertificatePem, string Nonce, byte[] Signature);

/// <summary>Enrollment accepted: the bearer token for every later call of this client, and its secure-aggregation id.</summary>
/// <param name="ClientId">The certificate's CN.</param>
/// <param name="SecAggId">Positive, distinct per federation: the client's Shamir x-coordinate in every round.</param>
/// <param name="Token">ES256 bearer token (role federation-client, tenant = client id).</param>
/// <param name="TokenExpiresAt">When to enroll again (a new challenge; same certificate).</param>
/// <param name="CertificateThumbprint">SHA-256 thumbprint (lower-case hex) the enrollment is bound to.</param>
public sealed record EnrollmentResponse(string ClientId, int SecAggId, string Token, DateTimeOffset TokenExpiresAt, string CertificateThumbprint);

/// <summary>What an enrollment signature covers.</summary>
public static class EnrollmentProof
{
    /// <summary>UTF-8 of <c>"serverless-enroll/v1\n{federation}\n{clientId}\n{nonce}"</c>.</summary>
    public static byte[] SignedBytes(string federation, string clientId, string nonce) =>
        Encoding.UTF8.GetBytes($"serverless-enroll/v1\n{federation}\n{clientId}\n{nonce}");

    /// <summary>Signs with the client certificate's private key (ECDSA P-256, SHA-256, r||s).</summary>
    public static byte[] Sign(ECDsa key, string federation, string clientId, string nonce)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.SignData(SignedBytes(federation, clientId, nonce), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>Verifies a signature made by <see cref="Sign"/>.</summary>
    public static bool Verify(ECDsa publicKey, string federation, string clientId, string nonce, byte[] signature)
    {
        ArgumentNullException.ThrowIfNull(publicKey);
        if (signature is null || signature.Length != 64) return false;
        return publicKey.VerifyData(SignedBytes(federation, clientId, nonce), signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }
}

// ------------------------------------------------------------------ rounds

/// <summary>Optional body of <c>POST .../rounds</c>.</summary>
/// <param name="Reason">Free text recorded in the audit trail.</param>
public sealed record StartRoundRequest(string? Reason = null);

/// <summary>A client that dropped out, and in which stage and phase it went silent.</summary>
public sealed record RoundDropout(string ClientId, string Stage, RoundPhase Phase);

/// <summary>A client whose contribution was refused, and why.</summary>
public sealed record RoundExcludedClient(string ClientId, string Stage, string Reason);

/// <summary>Answer of <c>GET .../rounds/{round}</c> (and <c>.../rounds/active</c>).</summary>
/// <param name="Federation">Federation id.</param>
/// <param name="Round">Round number (1-based).</param>
/// <param name="InstanceId"><c>round-{federation}-{round}</c>.</param>
/// <param name="Phase">Current phase.</param>
/// <param name="Stage">Current stage (statistics or training).</param>
/// <param name="PhaseDeadline">When the open phase closes (null when no client phase is open).</param>
/// <param name="Selected">Client ids selected.</param>
/// <param name="Seen">Client ids that answered at least one phase.</param>
/// <param name="Dropouts">Clients that went silent.</param>
/// <param name="Excluded">Clients refused (protocol violations, anomalous updates).</param>
/// <param name="Metrics">Round metrics (hold-out AUROC / accuracy / loss, update norm, bytes, times).</param>
/// <param name="EpsilonSpent">Federation epsilon after this round (before it while running).</param>
/// <param name="EpsilonBudget">The budget.</param>
/// <param name="BaseVersion">Model version the round trains from (null while statistics are gathered for a new federation).</param>
/// <param name="NewVersion">Version written by this round.</param>
/// <param name="Promoted">Whether <paramref name="NewVersion"/> became the current version.</param>
/// <param name="Reason">Why the round failed, was refused, or why the gate rejected the version.</param>
public sealed record RoundStatus(string Federation, int Round, string InstanceId, RoundPhase Phase, string Stage, DateTimeOffset? PhaseDeadline,
    string[] Selected, string[] Seen, RoundDropout[] Dropouts, RoundExcludedClient[] Excluded, IReadOnlyDictionary<string, double> Metrics,
    double EpsilonSpent, double EpsilonBudget, string? BaseVersion, string? NewVersion, bool Promoted, string? Reason, string? TraceParent = null);

/// <summary>Training instructions (training stage).</summary>
/// <param name="BaseVersion">Model version to train from (download it with <c>GET .../rounds/{round}/model</c>).</param>
/// <param name="Fit">Local training: epochs, learning rate, mu, seed, ClipNorm (clip the delta to this L2 norm), NoiseStd (add N(0, NoiseStd^2) per coordinate after clipping: the client's share of distributed DP), UniformWeight.</param>
/// <param name="BatchSize">Local mini-batch size.</param>
/// <param name="WeightCap">Weight = min(1, examples / WeightCap); 0 or UniformWeight = weight 1.</param>
/// <param name="Encoding">How to encode the update into the ring (secure aggregation on), else null.</param>
public sealed record TrainingTask(string BaseVersion, FitConfig Fit, int BatchSize, int WeightCap, UpdateRingEncoding? Encoding);

/// <summary>Fixed-point encoding of the weighted update (use <see cref="UpdateEncoding"/>): vector [w * delta (ParameterCount entries) | w * CoordinateBound / 2], codec RingCodec(RingBits, CoordinateBound, MaxClients), stochastic rounding.</summary>
public sealed record UpdateRingEncoding(int RingBits, float CoordinateBound, int MaxClients, int ParameterCount);

/// <summary>
/// Statistics instructions (statistics stage): sums over these columns, encoded by <see cref="StatisticsEncoding"/>. Without
/// <paramref name="Privacy"/>, the exact FeatureSums (privacy off). With it (added 2026-12-04, issue 20): the bounded, noised
/// contributions of <see cref="StatisticsMechanism.ClientInput"/>, whose noise share the client derives itself from the stage's
/// secure-aggregation threshold.
/// </summary>
public sealed record StatisticsTask(string[] Columns, int FractionBits, StatisticsMechanism? Privacy = null);

/// <summary>
/// Answer of <c>GET .../rounds/{round}/task</c>: everything the calling client needs to act in the open phase.
/// The phase inputs (Keys, Shares, Unmask) are set only in their phase and only for this client.
/// </summary>
/// <param name="Federation">Federation id.</param>
/// <param name="Round">Round number.</param>
/// <param name="Stage">Current stage.</param>
/// <param name="Phase">Current phase.</param>
/// <param name="Action">What to do now.</param>
/// <param name="Deadline">When the open phase closes.</param>
/// <param name="SecAggId">This client's id in the secure-aggregation parameters.</param>
/// <param name="Parameters">Public secure-aggregation parameters of this stage (null when secure aggregation is off).</param>
/// <param name="Keys">ShareKeys phase: the neighbours' advertised keys (from CloseAdvertiseKeys).</param>
/// <param name="Shares">MaskedInput phase: the shares addressed to this client (from CloseShareKeys).</param>
/// <param name="Unmask">Unmasking phase: whose secrets to reveal.</param>
/// <param name="Statistics">Statistics stage instructions.</param>
/// <param name="Training">Training stage instructions.</param>
/// <param name="Submitted">This client's message for the open phase has been received.</param>
/// <param name="Reason">Why the action is Done (excluded, dropped, round failed) or NotSelected.</param>
/// <param name="Peers">Malicious-server variant: every selected client's enrolled certificate, from which the agent takes each peer's
/// signature key after checking it chains to its own trust anchor (added 2026-12-03). In the ConsistencyCheck phase
/// <paramref name="Unmask"/> carries the survivor set to sign; in Unmasking it carries the signatures as well.</param>
public sealed record ClientTask(string Federation, int Round, string Stage, RoundPhase Phase, ClientAction Action, DateTimeOffset? Deadline, int SecAggId,
    SecAggRoundParameters? Parameters, KeysBroadcast? Keys, ForwardedShares? Shares, UnmaskRequest? Unmask,
    StatisticsTask? Statistics, TrainingTask? Training, bool Submitted, string? Reason, RoundPeer[]? Peers = null);

/// <summary>A selected client's identity for the malicious-server variant: its SecAgg id, client id (the certificate's CN) and certificate (PEM).</summary>
public sealed record RoundPeer(int SecAggId, string ClientId, string CertificatePem);

/// <summary>
/// What each secure-aggregation signature binds besides the round parameters: the federation, the round number and the stage, so a
/// signature made in one federation, round or stage never verifies in another.
/// </summary>
public static class SecAggSigningContext
{
    /// <summary>UTF-8 of <c>"serverless-secagg/v1\n{federation}\n{round}\n{stage}"</c>.</summary>
    public static byte[] Of(string federation, int round, string stage) =>
        Encoding.UTF8.GetBytes($"serverless-secagg/v1\n{federation}\n{round.ToString(System.Globalization.CultureInfo.InvariantCulture)}\n{stage}");

    /// <summary>
    /// The public key (SubjectPublicKeyInfo) of an enrolled client's certificate: its long-term ECDSA P-256 identity, the key it
    /// proved possession of at enrolment; null when the PEM is not a P-256 certificate.
    /// </summary>
    public static byte[]? SigningKeyOf(string? certificatePem)
    {
        if (string.IsNullOrEmpty(certificatePem)) return null;
        try
        {
            using var cert = X509Certificate2.CreateFromPem(certificatePem);
            using var key = cert.GetECDsaPublicKey();
            return key is { KeySize: 256 } ? key.ExportSubjectPublicKeyInfo() : null;
        }
        catch (CryptographicException)
        {
            return null;
        }
    }
}

/// <summary>Answer of <c>GET .../rounds/{round}/model</c>: the base model (<c>ModelCheckpoint.ToJson()</c>: config, fitted preprocessor, parameters).</summary>
public sealed record RoundModel(string Version, string Checkpoint);

/// <summary>Body of <c>POST .../advertise</c>.</summary>
public sealed record AdvertiseKeysUpload(AdvertiseKeysMessage Message);

/// <summary>Body of <c>POST .../shares</c>.</summary>
public sealed record ShareKeysUpload(ShareKeysMessage Message);

/// <summary>Body of <c>POST .../masked</c>: the masked input packed at k bits per entry (SecAggClient.MaskInput's output).</summary>
public sealed record MaskedInputUpload(MaskedInputMessage Message);

/// <summary>Body of <c>POST .../consistency</c> (malicious-server variant): the client's signature over the survivor set.</summary>
public sealed record ConsistencyUpload(ConsistencySignature Message);

/// <summary>Body of <c>POST .../unmask</c>.</summary>
public sealed record UnmaskUpload(UnmaskResponse Message);

/// <summary>Body of <c>POST .../upload</c> (secure aggregation off): the clipped (and, with DP, not noised: the server adds central noise) delta as an UpdateFrame (dense, quantized or sparse).</summary>
public sealed record PlainUpdateUpload(byte[] Frame, int NumExamples);

/// <summary>Answer to every phase POST: 202 when first stored, 200 when the identical message was already stored (idempotent retry).</summary>
public sealed record PhaseReceipt(int Round, string Stage, RoundPhase Phase, int SecAggId, bool Duplicate);

// ------------------------------------------------------------------ model versions

/// <summary>Lifecycle of a model version.</summary>
public enum ModelVersionState
{
    /// <summary>Passed the gate, waiting for an operator's promote (AutoPromote off).</summary>
    Candidate = 0,

    /// <summary>The current version.</summary>
    Promoted = 1,

    /// <summary>Was current, replaced by a later promote or a rollback.</summary>
    Retired = 2,

    /// <summary>Failed the promotion gate (kept for inspection; can still be promoted explicitly).</summary>
    Rejected = 3,
}

/// <summary>One model version.</summary>
/// <param name="Version"><c>v{round}</c> (<c>v0</c> = the initial parameters after the statistics stage).</param>
/// <param name="Round">Round that produced it.</param>
/// <param name="CreatedAt">When it was written.</param>
/// <param name="State">Lifecycle state.</param>
/// <param name="ParentVersion">Version it was trained from.</param>
/// <param name="Metrics">Hold-out metrics (auroc, accuracy, logLoss) and round figures.</param>
/// <param name="EpsilonSpent">Federation epsilon once this version existed.</param>
/// <param name="ParameterCount">Parameters.</param>
/// <param name="Reason">Gate verdict or the operator's reason.</param>
public sealed record ModelVersionInfo(string Version, int Round, DateTimeOffset CreatedAt, ModelVersionState State, string? ParentVersion,
    IReadOnlyDictionary<string, double> Metrics, double EpsilonSpent, int ParameterCount, string? Reason);

/// <summary>Answer of <c>GET .../models</c>.</summary>
public sealed record ModelVersionList(string? Current, ModelVersionInfo[] Versions);

/// <summary>Body of promote (version in the route) and rollback (to the previous promoted version, or <paramref name="ToVersion"/>).</summary>
public sealed record ModelChangeRequest(string? Reason = null, string? ToVersion = null);

// ------------------------------------------------------------------ routes

/// <summary>
/// Route templates (the <c>[HttpTrigger]</c> Route, under <c>/api/</c>) and builders of request paths
/// relative to the host's base address (they include <c>api/</c>).
/// </summary>
public static class RoundRoutes
{
    /// <summary>Templates as the functions declare them.</summary>
    public static class Templates
    {
        public const string Federations = "federations";
        public const string Federation = "federations/{federation}";
        public const string HoldOut = "federations/{federation}/holdout";
        public const string Challenge = "federations/{federation}/enrollment/challenge";
        public const string Enroll = "federations/{federation}/enrollments";
        public const string Rounds = "federations/{federation}/rounds";
        public const string ActiveRound = "federations/{federation}/rounds/active";
        public const string Round = "federations/{federation}/rounds/{round:int}";
        public const string Task = "federations/{federation}/rounds/{round:int}/task";
        public const string Model = "federations/{federation}/rounds/{round:int}/model";
        public const string Advertise = "federations/{federation}/rounds/{round:int}/{stage}/advertise";
        public const string Shares = "federations/{federation}/rounds/{round:int}/{stage}/shares";
        public const string Masked = "federations/{federation}/rounds/{round:int}/{stage}/masked";
        public const string Consistency = "federations/{federation}/rounds/{round:int}/{stage}/consistency";
        public const string Unmask = "federations/{federation}/rounds/{round:int}/{stage}/unmask";
        public const string Upload = "federations/{federation}/rounds/{round:int}/{stage}/upload";
        public const string Models = "federations/{federation}/models";
        public const string ModelOnnx = "federations/{federation}/models/{version}/onnx";
        public const string Promote = "federations/{federation}/models/{version}/promote";
        public const string Rollback = "federations/{federation}/models/rollback";
    }

    private static string E(string s) => Uri.EscapeDataString(s);

    public static string Federations() => "api/federations";
    public static string Federation(string federation) => $"api/federations/{E(federation)}";
    public static string HoldOut(string federation) => $"api/federations/{E(federation)}/holdout";
    public static string Challenge(string federation) => $"api/federations/{E(federation)}/enrollment/challenge";
    public static string Enroll(string federation) => $"api/federations/{E(federation)}/enrollments";
    public static string Rounds(string federation) => $"api/federations/{E(federation)}/rounds";
    public static string ActiveRound(string federation) => $"api/federations/{E(federation)}/rounds/active";
    public static string Round(string federation, int round) => $"api/federations/{E(federation)}/rounds/{round}";
    public static string Task(string federation, int round) => $"api/federations/{E(federation)}/rounds/{round}/task";
    public static string Model(string federation, int round) => $"api/federations/{E(federation)}/rounds/{round}/model";
    public static string Advertise(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/advertise";
    public static string Shares(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/shares";
    public static string Masked(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/masked";
    public static string Consistency(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/consistency";
    public static string Unmask(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/unmask";
    public static string Upload(string federation, int round, string stage) => $"api/federations/{E(federation)}/rounds/{round}/{E(stage)}/upload";
    public static string Models(string federation) => $"api/federations/{E(federation)}/models";
    public static string ModelOnnx(string federation, string version) => $"api/federations/{E(federation)}/models/{E(version)}/onnx";
    public static string Promote(string federation, string version) => $"api/federations/{E(federation)}/models/{E(version)}/promote";
    public static string Rollback(string federation) => $"api/federations/{E(federation)}/models/rollback";

    /// <summary>The durable instance id of a round: deterministic, so a round is never started twice.</summary>
    public static string InstanceId(string federation, int round) => $"round-{federation}-{round}";
}
