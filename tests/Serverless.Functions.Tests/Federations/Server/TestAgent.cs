using System.Net;
using System.Security.Cryptography.X509Certificates;
using Serverless.Federation.Compression;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;
using Serverless.Security.Identity;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// A minimal hospital agent for the server's tests: enrolls with a dev-CA certificate, polls its task
/// and answers every phase with <see cref="SecAggClient"/> directly; trains a little on its own
/// patients. It records the ring vector it masked, so a test can check the server's sum exactly.
/// It can go silent before a chosen phase (a dropout) or skip clipping and scale its update (an attacker).
/// </summary>
public sealed class TestAgent : IDisposable
{
    private readonly string _federation;
    private readonly X509Certificate2 _certificate;
    private readonly IReadOnlyList<PatientRecord> _patients;
    private readonly Dictionary<(int, string), SecAggClient> _secagg = [];

    public TestAgent(HttpClient http, string federation, string clientId, X509Certificate2 certificate, IReadOnlyList<PatientRecord> patients)
    {
        Http = http;
        _federation = federation;
        ClientId = clientId;
        _certificate = certificate;
        _patients = patients;
    }

    /// <summary>The host (replaceable after a host restart).</summary>
    public HttpClient Http { get; set; }

    public string ClientId { get; }
    public string Token { get; private set; } = "";
    public int SecAggId { get; private set; }

    /// <summary>Ring vectors this agent masked, per (round, stage).</summary>
    public Dictionary<(int Round, string Stage), uint[]> Inputs { get; } = [];

    /// <summary>The agent goes silent once asked for this (stage, phase).</summary>
    public (string Stage, RoundPhase Phase)? DropBefore { get; set; }

    /// <summary>The agent ignores this (stage, phase) but keeps polling (a transient outage).</summary>
    public (string Stage, RoundPhase Phase)? Skip { get; set; }

    /// <summary>Not 1: skip clipping and multiply the update (a poisoning client).</summary>
    public float AttackScale { get; set; } = 1;

    /// <summary>
    /// Malformed messages to post (raw JSON; <c>{id}</c> becomes the agent's SecAgg id) when asked for
    /// this (stage, phase), instead of a real answer; the agent then goes silent. Responses in <see cref="MalformedResponses"/>.
    /// </summary>
    public (string Stage, RoundPhase Phase, string[] Bodies)? Malformed { get; set; }

    /// <summary>Status and body of each <see cref="Malformed"/> post.</summary>
    public List<(HttpStatusCode Status, string? MediaType, string Body)> MalformedResponses { get; } = [];

    /// <summary>Phases answered, in order (for tests that stop the host between phases).</summary>
    public List<(string Stage, RoundPhase Phase)> Answered { get; } = [];

    public static X509Certificate2 IssueCertificate(string dataDirectory, string clientId)
    {
        using var ca = DevCertificateAuthority.Load(Path.Combine(dataDirectory, "dev-ca", "ca.pfx"));
        return ca.IssueClientCertificate(clientId);
    }

    public async Task EnrollAsync()
    {
        using var c = await Http.SendAsync(HttpMethod.Post, RoundRoutes.Challenge(_federation), null);
        Assert.True(c.StatusCode == HttpStatusCode.OK, await c.Content.ReadAsStringAsync());
        var challenge = await c.ReadAsync<EnrollmentChallenge>();
        using var key = _certificate.GetECDsaPrivateKey()!;
        var request = new EnrollmentRequest(ClientId, _certificate.ExportCertificatePem(), challenge.Nonce, EnrollmentProof.Sign(key, _federation, ClientId, challenge.Nonce));
        using var e = await Http.SendAsync(HttpMethod.Post, RoundRoutes.Enroll(_federation), null, request);
        Assert.True(e.StatusCode == HttpStatusCode.OK, await e.Content.ReadAsStringAsync());
        var response = await e.ReadAsync<EnrollmentResponse>();
        Token = response.Token;
        SecAggId = response.SecAggId;
    }

    /// <summary>Plays round <paramref name="round"/> until the round is over for this agent (or it drops out); returns the last task.</summary>
    /// <param name="stopAfter">Optional: return (without dropping) once this many phases have been answered, to resume later.</param>
    public async Task<ClientTask?> RunRoundAsync(int round, TimeSpan timeout, int stopAfter = int.MaxValue)
    {
        var until = DateTime.UtcNow + timeout;
        ClientTask? task = null;
        while (DateTime.UtcNow < until)
        {
            HttpResponseMessage response;
            try
            {
                response = await Http.SendAsync(HttpMethod.Get, RoundRoutes.Task(_federation, round), Token);
            }
            catch (HttpRequestException)
            {
                await Task.Delay(200);   // the host is restarting
                continue;
            }
            using (response)
            {
                if (response.StatusCode != HttpStatusCode.OK) { await Task.Delay(250); continue; }
                task = await response.ReadAsync<ClientTask>();
            }
            if (task.Action is ClientAction.Done or ClientAction.NotSelected) return task;
            if (task.Action != ClientAction.Act) { await Task.Delay(250); continue; }
            if (DropBefore is { } drop && drop.Stage == task.Stage && drop.Phase == task.Phase) return task;
            if (Skip is { } skip && skip.Stage == task.Stage && skip.Phase == task.Phase) { await Task.Delay(250); continue; }
            if (Answered.Count >= stopAfter) return task;
            if (Malformed is { } bad && bad.Stage == task.Stage && bad.Phase == task.Phase)
            {
                await PostMalformedAsync(task, bad.Bodies);
                return task;
            }
            await ActAsync(task);
        }
        return task;
    }

    private async Task ActAsync(ClientTask task)
    {
        var key = (task.Round, task.Stage);
        string path;
        object body;
        switch (task.Phase)
        {
            case RoundPhase.AdvertiseKeys:
                if (_secagg.Remove(key, out var old)) old.Dispose();
                // The malicious-server variant: signed with the enrolled certificate's key; the peers' keys are the certificates the
                // server relays (the product's agent also checks them against its trust anchor).
                var client = task.Parameters!.RequireSignatures
                    ? new SecAggClient(task.Parameters, task.SecAggId, _certificate.GetECDsaPrivateKey(),
                        (task.Peers ?? []).ToDictionary(p => p.SecAggId, p => SecAggSigningContext.SigningKeyOf(p.CertificatePem)!),
                        SecAggSigningContext.Of(_federation, task.Round, task.Stage))
                    : new SecAggClient(task.Parameters, task.SecAggId);
                _secagg[key] = client;
                path = RoundRoutes.Advertise(_federation, task.Round, task.Stage);
                body = new AdvertiseKeysUpload(client.AdvertiseKeys());
                break;
            case RoundPhase.ShareKeys:
                path = RoundRoutes.Shares(_federation, task.Round, task.Stage);
                body = new ShareKeysUpload(_secagg[key].ShareKeys(task.Keys!));
                break;
            case RoundPhase.MaskedInput:
                var input = task.Stage == RoundStages.Statistics ? Statistics(task) : await TrainAsync(task);
                Inputs[key] = input;
                path = RoundRoutes.Masked(_federation, task.Round, task.Stage);
                body = new MaskedInputUpload(_secagg[key].MaskInput(task.Shares!, input));
                break;
            case RoundPhase.ConsistencyCheck:
                path = RoundRoutes.Consistency(_federation, task.Round, task.Stage);
                body = new ConsistencyUpload(_secagg[key].SignSurvivors(task.Unmask!));
                break;
            case RoundPhase.Unmasking:
                path = RoundRoutes.Unmask(_federation, task.Round, task.Stage);
                body = new UnmaskUpload(_secagg[key].Unmask(task.Unmask!));
                break;
            case RoundPhase.Upload:
                var delta = await LocalDeltaAsync(task);
                path = RoundRoutes.Upload(_federation, task.Round, task.Stage);
                body = new PlainUpdateUpload(UpdateFrame.EncodeDense(delta), _patients.Count);
                break;
            default:
                throw new InvalidOperationException($"The test agent does not play {task.Phase}.");
        }
        using var response = await Http.SendAsync(HttpMethod.Post, path, Token, body);
        Assert.True(response.StatusCode is HttpStatusCode.Accepted or HttpStatusCode.OK, $"{task.Stage}/{task.Phase}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Answered.Add((task.Stage, task.Phase));
    }

    private async Task PostMalformedAsync(ClientTask task, string[] bodies)
    {
        var path = task.Phase switch
        {
            RoundPhase.AdvertiseKeys => RoundRoutes.Advertise(_federation, task.Round, task.Stage),
            RoundPhase.ShareKeys => RoundRoutes.Shares(_federation, task.Round, task.Stage),
            RoundPhase.MaskedInput => RoundRoutes.Masked(_federation, task.Round, task.Stage),
            RoundPhase.ConsistencyCheck => RoundRoutes.Consistency(_federation, task.Round, task.Stage),
            RoundPhase.Unmasking => RoundRoutes.Unmask(_federation, task.Round, task.Stage),
            _ => RoundRoutes.Upload(_federation, task.Round, task.Stage),
        };
        foreach (var json in bodies)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, path);
            request.Headers.Authorization = new("Bearer", Token);
            request.Content = new StringContent(json.Replace("{id}", SecAggId.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal),
                System.Text.Encoding.UTF8, "application/json");
            using var response = await Http.SendAsync(request);
            MalformedResponses.Add((response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync()));
        }
    }

    private uint[] Statistics(ClientTask task)
    {
        var schema = CohortGenerator.Schema;
        Assert.Equal(schema.NumericColumns(), task.Statistics!.Columns);
        if (task.Statistics.Privacy is { } mechanism)
            return mechanism.ClientInput(schema, _patients, task.Parameters!.Threshold, task.Statistics.FractionBits, new Random(task.SecAggId * 7919 + task.Round));
        return StatisticsEncoding.Encode(FeatureSums.Accumulate(schema, _patients), task.Statistics.FractionBits);
    }

    private async Task<uint[]> TrainAsync(ClientTask task)
    {
        var delta = await LocalDeltaAsync(task);
        return UpdateEncoding.Encode(delta, 1.0, task.Training!.Encoding!, new Random(task.Training.Fit.Seed + 1));
    }

    /// <summary>Local training from the round's base model: the clipped, noised delta (or the attacker's scaled one).</summary>
    private async Task<float[]> LocalDeltaAsync(ClientTask task)
    {
        var t = task.Training!;
        using var response = await Http.SendAsync(HttpMethod.Get, RoundRoutes.Model(_federation, task.Round), Token);
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var model = await response.ReadAsync<RoundModel>();
        Assert.Equal(t.BaseVersion, model.Version);
        var checkpoint = ModelCheckpoint.FromJson(model.Checkpoint);
        var data = checkpoint.Preprocessor.Transform(_patients);
        var trainer = new Trainer(new CnnLstm(checkpoint.Config), new TrainerOptions
        {
            LearningRate = t.Fit.LearningRate, Epochs = t.Fit.LocalEpochs, BatchSize = t.BatchSize, Seed = t.Fit.Seed, Patience = 0, ProximalMu = t.Fit.ProximalMu,
        });
        var local = trainer.Train(data, checkpoint.Parameters, null, checkpoint.Parameters).Parameters;
        var delta = new float[local.Length];
        for (var i = 0; i < delta.Length; i++) delta[i] = local[i] - checkpoint.Parameters[i];
        var random = new Random(t.Fit.Seed);
        if (AttackScale != 1)
        {
            for (var i = 0; i < delta.Length; i++) delta[i] *= AttackScale;
        }
        else
        {
            if (t.Fit.ClipNorm > 0) GaussianMechanism.ClipL2(delta, t.Fit.ClipNorm);
            GaussianMechanism.AddGaussianNoise(delta, t.Fit.NoiseStd, random);
        }
        return delta;
    }

    public void Dispose()
    {
        foreach (var c in _secagg.Values) c.Dispose();
        _certificate.Dispose();
    }
}
