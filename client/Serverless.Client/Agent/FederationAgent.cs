using Serverless.Federation.Rounds;
using Serverless.Federation.Strategies;
using Serverless.Telemetry;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Client.Agent;

/// <summary>How <c>agent run</c> behaves.</summary>
internal sealed record AgentRunOptions
{
    /// <summary>Pause between polls when there is nothing to do.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Stop after this many rounds finished (0 = run until stopped).</summary>
    public int MaxRounds { get; init; }

    /// <summary>Bits of stochastic quantization for a visible update (secure aggregation off); 0 = float32.</summary>
    public int QuantizationBits { get; init; } = 8;

    /// <summary>Quantization chunk (one min/max pair per chunk).</summary>
    public int QuantizationChunk { get; init; } = 256;

    /// <summary>
    /// Take part in secure aggregation that holds only against an honest-but-curious server (no signed keys, no consistency
    /// check, the server's threshold and graph seed taken on trust). Off: such a round is refused, as issue 20 requires.
    /// </summary>
    public bool AllowHonestButCuriousServer { get; init; }

    /// <summary>
    /// This agent's own floor on client-level DP (z; 0 = none): in a training stage under secure aggregation its noise share
    /// must be at least z times the clip norm. That is the whole noise, so even if t - 1 colluders subtract their shares the
    /// sum still hides this client's update at z; a task below it (or one that does not clip) is refused before any key leaves.
    /// </summary>
    public double MinUpdateNoiseMultiplier { get; init; }

    /// <summary>Source of DP noise and stochastic rounding: <see cref="CryptoRandom"/> unless a test seeds it.</summary>
    public Func<Random> Randomness { get; init; } = static () => new CryptoRandom();

    /// <summary>
    /// Test hook: called right after the state for (stage, phase) is persisted and before its message is
    /// sent; returning true makes the agent stop there as if the process had been killed.
    /// </summary>
    public Func<string, RoundPhase, bool>? CrashBefore { get; init; }

    /// <summary>
    /// Test hook for agent processes (<see cref="CrashPlan.Variable"/>): right after the state for the planned
    /// round, stage and phase is persisted and before its message is sent, the process exits with code 137
    /// (as after a SIGKILL), without any cleanup.
    /// </summary>
    public CrashPlan? CrashAt { get; init; }
}

/// <summary>
/// Where an agent process crashes on purpose (tests and simulations): "[federation:]round:stage:phase",
/// e.g. "2:training:ShareKeys"; several separated by ','.
/// </summary>
internal sealed record CrashPlan(IReadOnlyList<(string? Federation, int Round, string Stage, RoundPhase Phase)> Points)
{
    public const string Variable = "SERVERLESS_AGENT_CRASH_BEFORE";

    public bool Matches(string federation, int round, string stage, RoundPhase phase) =>
        Points.Any(p => (p.Federation is null || p.Federation == federation) && p.Round == round && p.Stage == stage && p.Phase == phase);

    public static string Format(string? federation, int round, string stage, RoundPhase phase) =>
        (federation is null ? "" : federation + ":") + round.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + stage + ":" + phase;

    /// <summary>The plan in <paramref name="text"/>; null when empty.</summary>
    public static CrashPlan? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var points = new List<(string?, int, string, RoundPhase)>();
        foreach (var item in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = item.Split(':');
            if (parts.Length is < 3 or > 4) throw new ArgumentException($"{Variable}: '{item}' is not [federation:]round:stage:phase");
            var o = parts.Length - 3;
            if (!int.TryParse(parts[o], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var round)
                || !Enum.TryParse<RoundPhase>(parts[o + 2], ignoreCase: true, out var phase))
                throw new ArgumentException($"{Variable}: '{item}' is not [federation:]round:stage:phase");
            points.Add((o == 1 ? parts[0] : null, round, parts[o + 1], phase));
        }
        return new CrashPlan(points);
    }
}

/// <summary>The agent stopped where <see cref="AgentRunOptions.CrashBefore"/> said (tests only).</summary>
internal sealed class SimulatedCrashException(string message) : Exception(message);

/// <summary>
/// The hospital agent: enrolls with its certificate, polls each federation for rounds and answers every
/// phase with its local pipeline and a <see cref="SecAggClient"/> per stage. Before each message leaves,
/// the round state is sealed to disk, so a restarted agent knows what it already committed to. What
/// leaves the process: enrollment (certificate, signature), the SecAgg messages (keys, encrypted shares,
/// a masked ring vector, revealed shares) or a quantized update frame, and nothing else.
/// </summary>
internal sealed class FederationAgent : IDisposable
{
    private const int PhaseSteps = 5;
    private readonly string _directory;
    private readonly AgentConfig _config;
    private readonly AgentKeys _keys;
    private readonly RoundsClient _client;
    private readonly X509Certificate2 _certificate;
    private readonly LocalUpdatePipeline _pipeline;
    private readonly AgentRunOptions _options;
    private readonly IAgentProgress _progress;
    private readonly Dictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private ECDsa? _identityKey;
    private CertificateTrust? _peerTrust;

    public FederationAgent(string directory, AgentConfig config, AgentKeys keys, RoundsClient client, X509Certificate2 certificate,
        LocalUpdatePipeline pipeline, AgentRunOptions options, IAgentProgress progress)
    {
        _directory = directory;
        _config = config;
        _keys = keys;
        _client = client;
        _certificate = certificate;
        _pipeline = pipeline;
        _options = options;
        _progress = progress;
    }

    /// <summary>Rounds finished (any outcome) since this process started.</summary>
    public int RoundsFinished { get; private set; }

    /// <summary>Sealed credentials file of an enrollment.</summary>
    public static SealedStateFile<EnrollmentCredentials> CredentialsFile(string directory, string federation, AgentKeys keys) =>
        new(Path.Combine(directory, $"credentials-{federation}.bin"), keys.Encryptor);

    /// <summary>Sealed round-state file of a federation.</summary>
    public static SealedStateFile<AgentRoundState> ProgressFile(string directory, string federation, AgentKeys keys) =>
        new(Path.Combine(directory, $"round-{federation}.bin"), keys.Encryptor);

    /// <summary>Finished rounds, one JSON line each.</summary>
    public static string LogPath(string directory) => Path.Combine(directory, "rounds.jsonl");

    /// <summary>
    /// Enrollment: a fresh challenge, signed with the certificate's private key, answered by a bearer token
    /// and this client's secure-aggregation id. The credentials are sealed in the agent directory.
    /// </summary>
    public static async Task<EnrollmentCredentials> EnrollAsync(RoundsClient client, X509Certificate2 certificate, string federation,
        string directory, AgentKeys keys, CancellationToken ct)
    {
        using var key = certificate.GetECDsaPrivateKey() ?? throw new InvalidDataException("the client certificate has no ECDSA P-256 private key");
        var clientId = ClientIdOf(certificate);
        var challenge = await client.ChallengeAsync(federation, ct);
        var signature = EnrollmentProof.Sign(key, federation, clientId, challenge.Nonce);
        var response = await client.EnrollAsync(federation, new EnrollmentRequest(clientId, certificate.ExportCertificatePem(), challenge.Nonce, signature), ct);
        if (response.SecAggId < 1 || string.IsNullOrEmpty(response.Token)) throw new InvalidDataException("the enrollment answer has no token or no valid secure-aggregation id");
        var credentials = new EnrollmentCredentials(federation, response.ClientId, response.SecAggId, response.Token, response.TokenExpiresAt, response.CertificateThumbprint);
        await CredentialsFile(directory, federation, keys).SaveAsync(credentials, ct);
        return credentials;
    }

    /// <summary>The certificate's CN.</summary>
    public static string ClientIdOf(X509Certificate2 certificate) => certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);

    /// <summary>Polls every enrolled federation until cancelled or <see cref="AgentRunOptions.MaxRounds"/> rounds finished.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (_config.Federations.Count == 0) throw new InvalidOperationException("this agent is not enrolled in any federation: run 'agent enroll' first");
        foreach (var federation in _config.Federations) _sessions[federation] = await OpenSessionAsync(federation, ct);
        while (!ct.IsCancellationRequested)
        {
            var acted = false;
            foreach (var session in _sessions.Values)
            {
                try
                {
                    acted |= await StepAsync(session, ct);
                }
                catch (RoundsApiException e) when (e.Status == HttpStatusCode.Unauthorized)
                {
                    _progress.Note($"[{session.Federation}] token refused ({e.Message}); enrolling again");
                    await ReEnrollAsync(session, ct);
                }
                catch (RoundsApiException e) when (e.Transient)
                {
                    _progress.Note($"[{session.Federation}] server unavailable, retrying: {e.Message}");
                }
                catch (Exception e) when (e is RoundsApiException or InvalidDataException)
                {
                    // A refusal (e.g. 409: the phase closed before this agent's message arrived) or a task this agent
                    // cannot act on: it says so and keeps serving; the round treats it as a dropout if it must.
                    _progress.Note($"[{session.Federation}] {e.Message}");
                }
                if (_options.MaxRounds > 0 && RoundsFinished >= _options.MaxRounds) return;
            }
            if (!acted) await Task.Delay(_options.PollInterval, ct).ConfigureAwait(false);
        }
    }

    private async Task<Session> OpenSessionAsync(string federation, CancellationToken ct)
    {
        var credentials = await CredentialsFile(_directory, federation, _keys).LoadAsync(ct)
                          ?? throw new InvalidOperationException($"no credentials for federation '{federation}': run 'agent enroll' again");
        var session = new Session(federation, credentials, ProgressFile(_directory, federation, _keys));
        session.Progress = await session.StateFile.LoadAsync(ct);
        if (session.Progress is { Finished: false } p)
        {
            // Restarted mid-round: what was persisted says what this agent already committed to.
            p.Restarts++;
            await session.StateFile.SaveAsync(p, ct);
            _progress.Note($"[{federation}] resuming round {p.Round} after a restart (trained update {(p.Update is null ? "not yet computed" : "kept")})");
        }
        if (credentials.TokenExpiresAt <= DateTimeOffset.UtcNow.AddMinutes(1)) await ReEnrollAsync(session, ct);
        return session;
    }

    private async Task ReEnrollAsync(Session session, CancellationToken ct)
    {
        _client.Token = null;
        session.Credentials = await EnrollAsync(_client, _certificate, session.Federation, _directory, _keys, ct);
    }

    /// <summary>
    /// One poll of one federation; true when a message was sent (poll again at once). While a round is open
    /// for this agent it asks only for its task (one request per poll: the server rate-limits each endpoint).
    /// </summary>
    private async Task<bool> StepAsync(Session session, CancellationToken ct)
    {
        _client.Token = session.Credentials.Token;
        var progress = session.Progress;
        if (progress is null || progress.Finished)
        {
            var status = await _client.ActiveRoundAsync(session.Federation, ct);
            if (status is null || (progress is not null && progress.Round == status.Round)) return false;
            progress = session.Progress = new AgentRoundState { Federation = session.Federation, Round = status.Round, TraceParent = status.TraceParent };
            session.DisposeClients();
            await session.StateFile.SaveAsync(progress, ct);
        }

        ClientTask task;
        try
        {
            task = await _client.TaskAsync(session.Federation, progress.Round, ct);
        }
        catch (RoundsApiException e) when (e.Status is HttpStatusCode.NotFound or HttpStatusCode.Conflict or HttpStatusCode.Gone)
        {
            // Only a round that has ended ends this agent's part in it: a refusal while it still runs (a host that
            // answered from a stale read, say) would otherwise silence a survivor and starve the unmasking.
            if (await EndedOutcomeAsync(session.Federation, progress.Round, e.Message, ct) is { } ended) await FinishAsync(session, progress, ended, ct);
            return false;
        }
        switch (task.Action)
        {
            case ClientAction.NotSelected:
                await FinishAsync(session, progress, "not selected" + (task.Reason is null ? "" : ": " + task.Reason), ct);
                return false;
            case ClientAction.Done:
                await FinishAsync(session, progress, await OutcomeOfAsync(session.Federation, progress.Round, ct, task.Reason), ct);
                return false;
            case ClientAction.Wait:
                return false;
        }
        if (task.Submitted || !RoundStages.IsKnown(task.Stage)) return false;
        var stage = progress.Stage(task.Stage);
        if (stage.Abandoned) return false;
        if (stage.LastSent >= task.Phase)
        {
            // Produced but not received: resend the very same message (a lost request); or, when keys were never
            // received and this process no longer holds them (a crash right before sending), advertise fresh ones:
            // nobody has seen the old ones. Any later phase without the in-memory secrets is a dropout (below).
            if (stage.LastSent == task.Phase && stage.Pending is { } pending && pending.Phase == task.Phase)
            {
                // The sealed message, byte for byte (after a restart too): never a second, different message for a phase.
                await SendAndSaveAsync(session, progress, task.Stage, pending.Path, new RawJson(pending.Body), ct);
                return true;
            }
            if (!(task.Phase == RoundPhase.AdvertiseKeys && stage.LastSent == RoundPhase.AdvertiseKeys && !session.Clients.ContainsKey(task.Stage))) return false;
        }
        // One span per phase this agent acts in, inside the round's trace; its requests (and training) are below it.
        ActivityContext.TryParse(progress.TraceParent, null, out var round);
        using var span = ServerlessTelemetry.Source.StartActivity($"agent {task.Stage}/{task.Phase}", ActivityKind.Client, round,
            [new("serverless.federation", session.Federation), new("serverless.round", progress.Round), new("serverless.agent", task.SecAggId)]);
        return task.Phase switch
        {
            RoundPhase.AdvertiseKeys => await AdvertiseAsync(session, progress, stage, task, ct),
            RoundPhase.ShareKeys or RoundPhase.MaskedInput or RoundPhase.ConsistencyCheck or RoundPhase.Unmasking => await ContinueSecAggAsync(session, progress, stage, task, ct),
            RoundPhase.Upload => await UploadPlainAsync(session, progress, stage, task, ct),
            _ => false,
        };
    }

    private async Task<bool> AdvertiseAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, CancellationToken ct)
    {
        var parameters = task.Parameters ?? throw new InvalidDataException("the advertise-keys task carries no secure-aggregation parameters");
        if (task.SecAggId != session.Credentials.SecAggId) throw new InvalidDataException($"the task names secure-aggregation id {task.SecAggId}, this client enrolled as {session.Credentials.SecAggId}");
        // Train first: the update is the expensive part and is sealed to disk, so a crash from here on
        // never trains again, and a client that cannot train in time simply does not advertise.
        if (task.Stage == RoundStages.Training) await EnsureUpdateAsync(session, progress, task, ct);
        _progress.Step(session.Federation, task.Round, $"{task.Stage}: advertising keys", 1, PhaseSteps);
        SecAggClient client;
        try
        {
            client = NewClient(session, task, parameters);
        }
        catch (SecAggAbortedException e)
        {
            // Refused before any key left: unsafe parameters (threshold below the floor, a server-chosen graph, no signatures)
            // or a peer certificate that does not chain to this agent's trust anchor.
            return await AbandonAsync(session, progress, stage, task, e.Message, ct);
        }
        session.ReplaceClient(task.Stage, client);
        var message = client.AdvertiseKeys();
        await ProduceAsync(session, progress, stage, task, client, RoundRoutes.Advertise(session.Federation, task.Round, task.Stage), new AdvertiseKeysUpload(message), ct);
        return true;
    }

    /// <summary>A fresh SecAgg client: in the malicious-server variant signed with the certificate's key, verifying peers against the trust anchor.</summary>
    /// <exception cref="SecAggAbortedException">the round's secure aggregation would not hold against an active server, or a peer is not trusted.</exception>
    private SecAggClient NewClient(Session session, ClientTask task, SecAggRoundParameters parameters)
    {
        if (task.Training?.Fit is { } fit && BelowNoiseFloor(fit, _options.MinUpdateNoiseMultiplier) is { } why)
            throw new SecAggAbortedException($"Client {task.SecAggId} aborts: {why}.");
        if (!parameters.RequireSignatures)
        {
            if (!_options.AllowHonestButCuriousServer)
                throw new SecAggAbortedException($"Client {task.SecAggId} aborts: the round's secure aggregation has no signed keys and no consistency check, so it does not hold against an active server (run with --allow-honest-but-curious-server to take part anyway).");
            return new SecAggClient(parameters, task.SecAggId);
        }
        return new SecAggClient(parameters, task.SecAggId, IdentityKey(), PeerKeys(task, parameters), SecAggSigningContext.Of(session.Federation, task.Round, task.Stage));
    }

    /// <summary>Why a training task's noise share is below the floor z (<see cref="AgentRunOptions.MinUpdateNoiseMultiplier"/>), or null when it is not (or z is 0).</summary>
    internal static string? BelowNoiseFloor(FitConfig fit, double minNoiseMultiplier)
    {
        if (!(minNoiseMultiplier > 0)) return null;
        if (!(fit.ClipNorm > 0))
            return string.Create(CultureInfo.InvariantCulture, $"the training task does not clip updates, so no noise meets this agent's floor z = {minNoiseMultiplier:G4} (--min-update-noise)");
        var floor = minNoiseMultiplier * fit.ClipNorm;
        return fit.NoiseStd >= floor * (1 - 1e-12) ? null : string.Create(CultureInfo.InvariantCulture,
            $"the training task's noise std {fit.NoiseStd:G4} at clip norm {fit.ClipNorm:G4} is below this agent's floor z = {minNoiseMultiplier:G4} (std {floor:G4}, --min-update-noise)");
    }

    /// <summary>The long-term identity: the enrolled certificate's ECDSA P-256 key (the key that proved possession at enrolment).</summary>
    private ECDsa IdentityKey() =>
        _identityKey ??= _certificate.GetECDsaPrivateKey() ?? throw new InvalidDataException("the client certificate has no ECDSA P-256 private key");

    /// <summary>
    /// The peers' signature keys. The server only relays the certificates, so each must chain to this agent's own trust anchor
    /// (the dev CA, <c>--ca</c>) with the clientAuth usage, name the client it is listed for, appear once, and ours must be ours;
    /// a certificate the server made up, or a colluder's certificate under a second id, aborts the round for this client.
    /// </summary>
    private Dictionary<int, byte[]> PeerKeys(ClientTask task, SecAggRoundParameters parameters)
    {
        if (_config.Trust is null)
            throw new SecAggAbortedException($"Client {task.SecAggId} aborts: it has no trust anchor (--ca) to check its peers' certificates against.");
        _peerTrust ??= new CertificateTrust(X509Certificate2.CreateFromPem(File.ReadAllText(_config.Trust)));
        var keys = new Dictionary<int, byte[]>();
        var thumbprints = new HashSet<string>(StringComparer.Ordinal);
        var own = ClientCertificateRegistry.Thumbprint(_certificate);
        foreach (var peer in task.Peers ?? [])
        {
            if (peer is null || Array.IndexOf(parameters.ClientIds, peer.SecAggId) < 0)
                throw new SecAggAbortedException($"Client {task.SecAggId} aborts: the server listed a peer that is not in the round.");
            X509Certificate2 cert;
            try { cert = X509Certificate2.CreateFromPem(peer.CertificatePem); }
            catch (CryptographicException) { throw new SecAggAbortedException($"Client {task.SecAggId} aborts: peer {peer.SecAggId}'s certificate is not a PEM certificate."); }
            using (cert)
            {
                if (!_peerTrust.IsTrusted(cert, DevCertificateAuthority.ClientAuthOid, out var why))
                    throw new SecAggAbortedException($"Client {task.SecAggId} aborts: peer {peer.SecAggId}'s certificate does not chain to this agent's trust anchor ({why}).");
                if (ClientIdOf(cert) != peer.ClientId)
                    throw new SecAggAbortedException($"Client {task.SecAggId} aborts: peer {peer.SecAggId}'s certificate names another client than the one listed.");
                var thumbprint = ClientCertificateRegistry.Thumbprint(cert);
                if (!thumbprints.Add(thumbprint))
                    throw new SecAggAbortedException($"Client {task.SecAggId} aborts: the server listed one certificate for two clients.");
                if ((peer.SecAggId == task.SecAggId) != (thumbprint == own))
                    throw new SecAggAbortedException($"Client {task.SecAggId} aborts: the server listed another certificate under this client's id, or this client's under another id.");
            }
            var spki = SecAggSigningContext.SigningKeyOf(peer.CertificatePem)
                ?? throw new SecAggAbortedException($"Client {task.SecAggId} aborts: peer {peer.SecAggId}'s certificate has no ECDSA P-256 key.");
            if (!keys.TryAdd(peer.SecAggId, spki)) throw new SecAggAbortedException($"Client {task.SecAggId} aborts: the server listed client {peer.SecAggId} twice.");
        }
        return keys;
    }

    private async Task<bool> ContinueSecAggAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, CancellationToken ct)
    {
        if (!session.Clients.TryGetValue(task.Stage, out var client))
        {
            // Restarted past key advertisement: resume with the sealed keys and shares.
            string? problem = null;
            if (stage.SecAgg is { } saved && task.Parameters is { } parameters)
            {
                try
                {
                    client = parameters.RequireSignatures
                        ? SecAggClient.Restore(parameters, saved, IdentityKey(), PeerKeys(task, parameters), SecAggSigningContext.Of(session.Federation, task.Round, task.Stage))
                        : SecAggClient.Restore(parameters, saved);
                    session.ReplaceClient(task.Stage, client);
                    _progress.Note($"[{session.Federation} round {task.Round}] resuming {task.Stage}/{task.Phase} with its sealed secure-aggregation keys and shares");
                }
                catch (ArgumentException e)
                {
                    problem = "its sealed secure-aggregation state does not fit the round: " + e.Message;
                }
                catch (SecAggAbortedException e)
                {
                    problem = e.Message;
                }
            }
            else problem = "it has no sealed secure-aggregation state for this stage";
            if (client is null)
            {
                // A dropout for the stage, which the protocol recovers; it never sends keys twice.
                return await AbandonAsync(session, progress, stage, task,
                    $"restarted after advertising keys in {task.Stage}; {problem}, so it drops out of this stage", ct);
            }
        }
        try
        {
            switch (task.Phase)
            {
                case RoundPhase.ShareKeys:
                {
                    _progress.Step(session.Federation, task.Round, $"{task.Stage}: sharing keys", 2, PhaseSteps);
                    var message = client.ShareKeys(task.Keys ?? throw new InvalidDataException("the share-keys task carries no keys"));
                    await ProduceAsync(session, progress, stage, task, client, RoundRoutes.Shares(session.Federation, task.Round, task.Stage), new ShareKeysUpload(message), ct);
                    return true;
                }
                case RoundPhase.MaskedInput:
                {
                    _progress.Step(session.Federation, task.Round, $"{task.Stage}: masked input", 3, PhaseSteps);
                    var input = task.Stage == RoundStages.Statistics ? StatisticsInput(task) : await TrainingInputAsync(session, progress, task, ct);
                    var message = client.MaskInput(task.Shares ?? throw new InvalidDataException("the masked-input task carries no shares"), input);
                    await ProduceAsync(session, progress, stage, task, client, RoundRoutes.Masked(session.Federation, task.Round, task.Stage), new MaskedInputUpload(message), ct);
                    return true;
                }
                case RoundPhase.ConsistencyCheck:
                {
                    // The survivor set is signed once; the sealed state remembers it, so no later request (after a restart
                    // too) gets shares for another set.
                    _progress.Step(session.Federation, task.Round, $"{task.Stage}: signing the survivor set", 4, PhaseSteps);
                    var message = client.SignSurvivors(task.Unmask ?? throw new InvalidDataException("the consistency-check task carries no survivor set"));
                    await ProduceAsync(session, progress, stage, task, client, RoundRoutes.Consistency(session.Federation, task.Round, task.Stage), new ConsistencyUpload(message), ct);
                    return true;
                }
                default:
                {
                    _progress.Step(session.Federation, task.Round, $"{task.Stage}: unmasking", 4, PhaseSteps);
                    var message = client.Unmask(task.Unmask ?? throw new InvalidDataException("the unmasking task carries no request"));
                    await ProduceAsync(session, progress, stage, task, client, RoundRoutes.Unmask(session.Federation, task.Round, task.Stage), new UnmaskUpload(message), ct);
                    return true;
                }
            }
        }
        catch (SecAggAbortedException e)
        {
            // The client refuses a server message that would reveal more than the sum.
            return await AbandonAsync(session, progress, stage, task, e.Message, ct);
        }
    }

    // The stage is given up for good (sealed, so a restart does not retry it) and the reason is shown; false: nothing was sent.
    private async Task<bool> AbandonAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, string reason, CancellationToken ct)
    {
        stage.Abandoned = true;
        stage.Reason = reason;
        await session.StateFile.SaveAsync(progress, ct);
        _progress.Note($"[{session.Federation} round {task.Round}] {reason}");
        return false;
    }

    private async Task<bool> UploadPlainAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, CancellationToken ct)
    {
        var update = await EnsureUpdateAsync(session, progress, task, ct);
        _progress.Step(session.Federation, task.Round, "uploading the quantized update", 4, PhaseSteps);
        var frame = LocalUpdatePipeline.EncodeVisible(update.Delta, _options.QuantizationBits, _options.QuantizationChunk, _options.Randomness());
        await ProduceAsync(session, progress, stage, task, null, RoundRoutes.Upload(session.Federation, task.Round, task.Stage), new PlainUpdateUpload(frame, update.Examples), ct);
        return true;
    }

    /// <summary>
    /// Seals the produced message (as its bytes) and the SecAgg client's state after producing it, then sends it: nothing
    /// leaves before the state that explains it is on disk.
    /// </summary>
    private async Task ProduceAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, SecAggClient? client, string path, object body, CancellationToken ct)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, body.GetType(), RoundJson.Options);
        stage.SecAgg = client is { Phase: not SecAggPhase.Done } ? client.ExportState() : null;
        stage.Pending = new PendingPhaseMessage(task.Phase, path, bytes);
        await CommitAsync(session, progress, stage, task, ct);
        await SendAndSaveAsync(session, progress, task.Stage, path, new RawJson(bytes), ct);
    }

    /// <summary>Persists "this phase's message is produced" before it is sent (then honours the crash hook).</summary>
    private async Task CommitAsync(Session session, AgentRoundState progress, StageProgress stage, ClientTask task, CancellationToken ct)
    {
        stage.LastSent = task.Phase;
        await session.StateFile.SaveAsync(progress, ct);
        if (_options.CrashBefore?.Invoke(task.Stage, task.Phase) == true)
            throw new SimulatedCrashException($"simulated crash before sending {task.Stage}/{task.Phase}");
        if (_options.CrashAt?.Matches(session.Federation, task.Round, task.Stage, task.Phase) == true)
        {
            _progress.Note($"[{session.Federation} round {task.Round}] crashing on purpose before sending {task.Stage}/{task.Phase} ({CrashPlan.Variable}): exit code 137");
            Console.Out.Flush();
            Console.Error.Flush();
            Environment.Exit(137);   // like a SIGKILL: no unwinding, nothing more is sent
        }
    }

    private async Task SendAsync(StageProgress stage, string path, object body, CancellationToken ct)
    {
        var before = _client.BodyBytesSent;
        try
        {
            await _client.PostPhaseAsync(path, body, ct);
        }
        finally
        {
            stage.BytesSent += _client.BodyBytesSent - before;
        }
    }

    private async Task SendAndSaveAsync(Session session, AgentRoundState progress, string stageName, string path, object body, CancellationToken ct)
    {
        var stage = progress.Stage(stageName);
        await SendAsync(stage, path, body, ct);
        await session.StateFile.SaveAsync(progress, ct);
    }

    private uint[] StatisticsInput(ClientTask task)
    {
        var spec = task.Statistics ?? throw new InvalidDataException("the statistics task carries no instructions");
        var columns = _pipeline.Schema.NumericColumns();
        if (!columns.SequenceEqual(spec.Columns ?? [], StringComparer.Ordinal))
            throw new InvalidDataException($"the server asks for statistics of [{string.Join(", ", spec.Columns ?? [])}], the local data has [{string.Join(", ", columns)}]");
        if (spec.Privacy is not { } mechanism) return StatisticsEncoding.Encode(_pipeline.StatisticsVector(), spec.FractionBits);
        // Private statistics: the noise share follows from the threshold this agent accepted for the stage (checked against its
        // floor in the active-server variant) and from z; it is sized for t - 1 colluders, so no server-chosen survivor count shrinks it.
        if (mechanism.Ranges?.Length != columns.Count) throw new InvalidDataException($"the statistics task names {mechanism.Ranges?.Length ?? 0} ranges for {columns.Count} columns");
        var threshold = task.Parameters?.Threshold ?? throw new InvalidDataException("the statistics task carries no secure-aggregation parameters");
        return _pipeline.PrivateStatisticsInput(mechanism, threshold, spec.FractionBits, _options.Randomness());
    }

    private async Task<uint[]> TrainingInputAsync(Session session, AgentRoundState progress, ClientTask task, CancellationToken ct)
    {
        var spec = task.Training ?? throw new InvalidDataException("the training task carries no instructions");
        var encoding = spec.Encoding ?? throw new InvalidDataException("the training task carries no ring encoding");
        var update = await EnsureUpdateAsync(session, progress, task, ct);
        var weight = spec.Fit.UniformWeight || spec.WeightCap <= 0 ? 1.0 : Math.Min(1.0, update.Examples / (double)spec.WeightCap);
        return UpdateEncoding.Encode(update.Delta, weight, encoding, _options.Randomness());
    }

    /// <summary>The round's update: the sealed one if it was trained from the same base version, else trained now and sealed.</summary>
    private async Task<TrainedUpdate> EnsureUpdateAsync(Session session, AgentRoundState progress, ClientTask task, CancellationToken ct)
    {
        var spec = task.Training ?? throw new InvalidDataException("the training task carries no instructions");
        if (progress.Update is { } kept && kept.BaseVersion == spec.BaseVersion) return kept;
        _progress.Step(session.Federation, task.Round, $"downloading model {spec.BaseVersion}", 0, PhaseSteps);
        var model = await _client.ModelAsync(session.Federation, task.Round, ct);
        if (model.Version != spec.BaseVersion) throw new InvalidDataException($"the server sent model {model.Version}, the task trains from {spec.BaseVersion}");
        ModelCheckpoint checkpoint;
        try
        {
            checkpoint = ModelCheckpoint.FromJson(model.Checkpoint);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidDataException or FormatException)
        {
            throw new InvalidDataException($"model {model.Version} is not a valid checkpoint: {e.Message}");
        }
        _progress.Step(session.Federation, task.Round, $"training locally from {model.Version}", 0, PhaseSteps);
        var fit = spec.Fit;
        var plan = new LocalTrainingPlan(task.Round, fit.LocalEpochs, fit.LearningRate, fit.ProximalMu, spec.BatchSize, fit.Seed, fit.ClipNorm, fit.NoiseStd);
        var local = await Task.Run(() => _pipeline.Train(checkpoint.Config, checkpoint.Preprocessor, checkpoint.Parameters, plan, _options.Randomness()), ct);
        var update = new TrainedUpdate(spec.BaseVersion, local.Delta, local.Examples, local.TrainLoss, local.TrainingTime.TotalSeconds, local.NormBeforeClip);
        progress.Update = update;
        await session.StateFile.SaveAsync(progress, ct);
        return update;
    }

    /// <summary>The outcome when the round has ended (or no longer exists), else null.</summary>
    private async Task<string?> EndedOutcomeAsync(string federation, int round, string reason, CancellationToken ct)
    {
        try
        {
            var status = await _client.RoundAsync(federation, round, ct);
            if (status.Phase is not (RoundPhase.Completed or RoundPhase.Failed or RoundPhase.Refused)) return null;
            return status.Phase.ToString().ToLowerInvariant() + (status.Reason is { Length: > 0 } why ? ": " + why : ": " + reason);
        }
        catch (RoundsApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return reason;
        }
    }

    private async Task<string> OutcomeOfAsync(string federation, int round, CancellationToken ct, string? reason = null)
    {
        try
        {
            var status = await _client.RoundAsync(federation, round, ct);
            var text = status.Phase.ToString().ToLowerInvariant();
            if (status.Reason is { Length: > 0 } why) text += ": " + why;
            else if (reason is { Length: > 0 }) text += ": " + reason;
            return text;
        }
        catch (RoundsApiException e) when (!e.Transient)
        {
            return reason ?? "unknown";
        }
    }

    private async Task FinishAsync(Session session, AgentRoundState progress, string outcome, CancellationToken ct)
    {
        // A secure stage this agent began but did not see through (killed, or it refused a server message) made it a dropout there.
        var dropped = progress.Stages.Where(s => s.Value.Abandoned || s.Value.LastSent is > RoundPhase.Starting and < RoundPhase.Unmasking)
            .Select(s => $"left {s.Key} after {s.Value.LastSent}" + (s.Value.Reason is null ? "" : $" ({s.Value.Reason})")).ToList();
        if (dropped.Count > 0) outcome += "; this agent " + string.Join("; ", dropped);
        progress.Finished = true;
        progress.Outcome = outcome;
        // The finished state drops the update: nothing sensitive outlives the round.
        var update = progress.Update;
        progress.Update = null;
        foreach (var s in progress.Stages.Values) { s.SecAgg = null; s.Pending = null; }
        await session.StateFile.SaveAsync(progress, ct);
        session.DisposeClients();
        var bytes = progress.Stages.Values.Sum(s => s.BytesSent);
        var entry = new RoundLogEntry(session.Federation, progress.Round, outcome, bytes, 4L * (update?.Delta.Length ?? 0), update?.TrainingSeconds ?? 0,
            update?.Examples ?? 0, progress.Restarts, _pipeline.Attack.AttacksIn(progress.Round), DateTimeOffset.UtcNow);
        await File.AppendAllTextAsync(LogPath(_directory), JsonSerializer.Serialize(entry, AgentJson.Options) + "\n", ct);
        _progress.Step(session.Federation, progress.Round, outcome, PhaseSteps, PhaseSteps);
        _progress.Note($"[{session.Federation}] round {progress.Round} finished for {_config.ClientId}: {outcome}; sent {bytes} B");
        RoundsFinished++;
    }

    public void Dispose()
    {
        foreach (var s in _sessions.Values) s.DisposeClients();
        _identityKey?.Dispose();
    }

    private sealed class Session(string federation, EnrollmentCredentials credentials, SealedStateFile<AgentRoundState> stateFile)
    {
        public string Federation { get; } = federation;
        public EnrollmentCredentials Credentials { get; set; } = credentials;
        public SealedStateFile<AgentRoundState> StateFile { get; } = stateFile;
        public AgentRoundState? Progress { get; set; }
        public Dictionary<string, SecAggClient> Clients { get; } = new(StringComparer.Ordinal);

        public void ReplaceClient(string stage, SecAggClient client)
        {
            if (Clients.Remove(stage, out var old)) old.Dispose();
            Clients[stage] = client;
        }

        public void DisposeClients()
        {
            foreach (var c in Clients.Values) c.Dispose();
            Clients.Clear();
        }
    }
}
