using Serverless.Federation.Rounds;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Client.Agent;

/// <summary>
/// The agent directory's public configuration (<c>agent.json</c>): where the server is, which certificate
/// identifies this hospital, which federations it enrolled in. Nothing secret: the token and the round state
/// are sealed in their own files.
/// </summary>
internal sealed record AgentConfig
{
    public const string FileName = "agent.json";

    /// <summary>Base address of the function host, e.g. https://127.0.0.1:7071/.</summary>
    public required string Server { get; init; }

    /// <summary>The client certificate (PKCS#12 with its key, 0600); its CN is the client id.</summary>
    public required string Certificate { get; init; }

    /// <summary>The dev CA certificate (PEM) the server's TLS certificate must chain to.</summary>
    public string? Trust { get; init; }

    /// <summary>Client id (the certificate's CN).</summary>
    public required string ClientId { get; init; }

    /// <summary>Federations this agent enrolled in.</summary>
    public List<string> Federations { get; init; } = [];

    public static string PathIn(string directory) => System.IO.Path.Combine(directory, FileName);

    /// <exception cref="FileNotFoundException">the directory has no agent.json (run <c>agent enroll</c> first).</exception>
    /// <exception cref="InvalidDataException">agent.json is not valid.</exception>
    public static AgentConfig Load(string directory)
    {
        var path = PathIn(directory);
        if (!File.Exists(path)) throw new FileNotFoundException($"no {FileName} in {directory}: run 'serverless-client agent enroll' first");
        try
        {
            var config = JsonSerializer.Deserialize<AgentConfig>(File.ReadAllText(path), AgentJson.Options) ?? throw new InvalidDataException($"{path}: empty");
            if (!Uri.TryCreate(config.Server, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http")) throw new InvalidDataException($"{path}: server '{config.Server}' is not an http(s) URL");
            return config;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}");
        }
    }

    public void Save(string directory) =>
        SealedStateFile<AgentConfig>.WriteAtomically(PathIn(directory), JsonSerializer.SerializeToUtf8Bytes(this, new JsonSerializerOptions(AgentJson.Options) { WriteIndented = true }));
}

/// <summary>An enrollment's credentials (sealed: the token is a bearer credential).</summary>
internal sealed record EnrollmentCredentials(string Federation, string ClientId, int SecAggId, string Token, DateTimeOffset TokenExpiresAt, string CertificateThumbprint);

/// <summary>The model update trained in a round, kept (sealed) so a crash after training does not train again.</summary>
internal sealed record TrainedUpdate(string BaseVersion, float[] Delta, int Examples, double TrainLoss, double TrainingSeconds, double NormBeforeClip);

/// <summary>Where this agent is in one stage of a round.</summary>
internal sealed class StageProgress
{
    /// <summary>Last phase whose message this agent produced (and persisted before sending).</summary>
    public RoundPhase LastSent { get; set; } = RoundPhase.Starting;

    /// <summary>This agent can no longer take part in the stage (why in <see cref="Reason"/>).</summary>
    public bool Abandoned { get; set; }

    public string? Reason { get; set; }

    /// <summary>Request bytes this agent sent for the stage (JSON bodies).</summary>
    public long BytesSent { get; set; }

    /// <summary>
    /// The secure-aggregation client's secrets right after its last message was produced (key pairs, self-mask seed,
    /// peers' keys, held shares), so a restarted agent resumes the stage with the same keys and shares. Null before
    /// keys exist and once the stage's last message is produced; sealed with the rest of the state, dropped with the round.
    /// </summary>
    public SecAggClientState? SecAgg { get; set; }

    /// <summary>
    /// The last message produced, exactly as it is sent. After a restart it is resent byte for byte, never produced
    /// again: a masked input is a function of fresh stochastic rounding, and two different inputs under one mask would
    /// reveal their difference.
    /// </summary>
    public PendingPhaseMessage? Pending { get; set; }
}

/// <summary>A phase message produced and persisted before it is sent.</summary>
internal sealed record PendingPhaseMessage(RoundPhase Phase, string Path, byte[] Body);

/// <summary>
/// The agent's persisted state for the round in progress of one federation (sealed at rest). Written
/// before every message is sent, so after a crash the agent knows what it already committed to: it never
/// sends a second, different message for a phase (keys in particular), and reuses a trained update.
/// </summary>
internal sealed class AgentRoundState
{
    public string Federation { get; set; } = "";
    public int Round { get; set; }
    public Dictionary<string, StageProgress> Stages { get; set; } = new(StringComparer.Ordinal);
    public TrainedUpdate? Update { get; set; }

    /// <summary>The round is over for this agent; <see cref="Outcome"/> says how.</summary>
    public bool Finished { get; set; }

    public string? Outcome { get; set; }

    /// <summary>Times the agent process restarted during this round.</summary>
    public int Restarts { get; set; }

    /// <summary>The round's trace context as the server announced it (ids only): this agent's spans of the round join that trace.</summary>
    public string? TraceParent { get; set; }

    public StageProgress Stage(string stage)
    {
        if (!Stages.TryGetValue(stage, out var s)) Stages[stage] = s = new StageProgress();
        return s;
    }
}

/// <summary>One line of <c>rounds.jsonl</c>: what this agent did in a finished round (for <c>agent status</c> and the simulation's table).</summary>
internal sealed record RoundLogEntry(string Federation, int Round, string Outcome, long BytesSent, long BytesPlain, double TrainingSeconds,
    int Examples, int Restarts, bool Attacked, DateTimeOffset FinishedAt);
