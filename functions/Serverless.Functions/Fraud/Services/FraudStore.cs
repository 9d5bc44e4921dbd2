using System.Collections.Concurrent;
using System.Security.Cryptography;
using Serverless.Fraud.Scoring;
using Serverless.Functions.Inference.Services;

namespace Serverless.Functions.Fraud.Services;

/// <summary>
/// Where fraud scoring keeps its objects. Models and the evaluation set (customer data, even tokenized)
/// are in the envelope-encrypted <c>checkpoints</c> container; the deployment record names versions only.
/// <list type="table">
/// <item><c>checkpoints/fraud/models/{version}/model.onnx</c> and <c>.../info.json</c>: a published version</item>
/// <item><c>checkpoints/fraud/intake/{tenant}/{id}.json</c>: an intake request's tokenized events until they are scored</item>
/// <item><c>checkpoints/fraud/evaluation.json</c>: the labelled, tokenized evaluation set of the metric gate and the drift reference</item>
/// <item><c>fraud/deployment.json</c>: champion, challenger, threshold and former champions, updated with If-Match</item>
/// <item><c>fraud/drift/r{revision}/{instance}.json</c>: one scorer instance's drift window (bin counts, no values) under a deployment revision; <c>.../alerted</c> once one instance raised its alert</item>
/// </list>
/// Queues: <c>fraud-transactions</c> (its poison queue <c>fraud-transactions-poison</c>), <c>fraud-alerts-{tenant}</c> and <c>fraud-drift-alerts</c>.
/// </summary>
public sealed class FraudStore(IBlobStoreProvider provider)
{
    public const string TransactionsQueue = "fraud-transactions";
    public const string DriftAlertsQueue = "fraud-drift-alerts";
    private const string ModelContainer = "checkpoints";
    private const string DeploymentContainer = "fraud";
    private const string DeploymentBlob = "deployment.json";
    private const string EvaluationBlob = "fraud/evaluation.json";
    private const long MaxDeploymentBytes = 1024 * 1024;
    // Stored lengths are the envelope's (ciphertext plus headers and tags), above the plaintext limit of FraudOptions.MaxModelBytes.
    private const long MaxStoredModelBytes = 300L * 1024 * 1024;

    private readonly ConcurrentDictionary<string, (byte[] Onnx, FraudModelInfo Info)> _models = new(StringComparer.Ordinal);

    private IBlobStore Models => provider.GetContainer(ModelContainer);
    private IBlobStore Deployments => provider.GetContainer(DeploymentContainer);

    /// <summary>A bank's alerts queue. Tenants of fraud scoring are queue-name safe (<see cref="IsValidTenant"/>).</summary>
    public static string AlertsQueue(string tenant) => "fraud-alerts-" + tenant;

    /// <summary>Lower-case letters, digits and inner single hyphens, 1-40 characters: the tenant becomes part of a queue name (Azure queue names are 3-63 such characters).</summary>
    public static bool IsValidTenant(string? tenant)
    {
        if (string.IsNullOrEmpty(tenant) || tenant.Length > 40 || tenant[0] == '-' || tenant[^1] == '-' || tenant.Contains("--", StringComparison.Ordinal)) return false;
        foreach (var c in tenant) if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')) return false;
        return true;
    }

    /// <summary>Stores a new version; false when the same bytes are there already; throws <see cref="FraudRefusedException"/> for other bytes under the version.</summary>
    public async Task<bool> PutModelAsync(FraudModelInfo info, byte[] onnx, CancellationToken cancellationToken)
    {
        try
        {
            // The model first: an info never points at a model that is not there.
            await Models.PutAsync(ModelBlob(info.Version), new MemoryStream(onnx, writable: false), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
            var existing = await InferenceBlobs.ReadAllAsync(Models, ModelBlob(info.Version), MaxStoredModelBytes, cancellationToken);
            if (existing is null || InferenceBlobs.Sha256Hex(existing) != info.Sha256)
                throw new FraudRefusedException(FraudRefusalCodes.Conflict, $"fraud model version '{info.Version}' is already published with other content; publish a new version", 409);
            if (await GetInfoAsync(info.Version, cancellationToken) is not null) return false;
        }
        await Models.PutAsync(InfoBlob(info.Version), new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(info, FraudJson.Options)), cancellationToken: cancellationToken);
        return true;
    }

    public async Task<FraudModelInfo?> GetInfoAsync(string version, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(Models, InfoBlob(version), MaxDeploymentBytes, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<FraudModelInfo>(bytes, FraudJson.Options);
    }

    /// <summary>A published version's ONNX bytes and info (cached: versions are immutable); null when unknown.</summary>
    public async Task<(byte[] Onnx, FraudModelInfo Info)?> GetModelAsync(string version, CancellationToken cancellationToken)
    {
        if (_models.TryGetValue(version, out var cached)) return cached;
        var info = await GetInfoAsync(version, cancellationToken);
        if (info is null) return null;
        var onnx = await InferenceBlobs.ReadAllAsync(Models, ModelBlob(version), MaxStoredModelBytes, cancellationToken)
            ?? throw new InvalidOperationException($"fraud model '{version}' has an info but no model blob");
        if (InferenceBlobs.Sha256Hex(onnx) != info.Sha256) throw new CryptographicException($"fraud model '{version}' does not match its recorded digest");
        return _models[version] = (onnx, info);
    }

    public Task PutEvaluationAsync(FraudEvaluationSet set, CancellationToken cancellationToken) =>
        Models.PutAsync(EvaluationBlob, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(set, FraudJson.Options)), cancellationToken: cancellationToken);

    public async Task<FraudEvaluationSet?> GetEvaluationAsync(CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(Models, EvaluationBlob, MaxStoredModelBytes, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<FraudEvaluationSet>(bytes, FraudJson.Options);
    }

    /// <summary>The deployment record and its ETag (null ETag: none written yet).</summary>
    public async Task<(FraudDeployment Deployment, string? ETag)> GetDeploymentAsync(CancellationToken cancellationToken)
    {
        await using var download = await Deployments.GetAsync(DeploymentBlob, cancellationToken);
        if (download is null) return (FraudDeployment.Empty, null);
        var deployment = await JsonSerializer.DeserializeAsync<FraudDeployment>(download.Content, FraudJson.Options, cancellationToken)
            ?? throw new InvalidDataException("the fraud deployment record is JSON null");
        return (deployment, download.Properties.ETag);
    }

    /// <summary>Writes the record if it is still at <paramref name="etag"/>; false when another writer came first.</summary>
    public async Task<bool> TryPutDeploymentAsync(FraudDeployment deployment, string? etag, CancellationToken cancellationToken)
    {
        try
        {
            await Deployments.PutAsync(DeploymentBlob, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(deployment, FraudJson.Options)),
                etag is null ? BlobCondition.MustNotExist : BlobCondition.MustMatch(etag), cancellationToken);
            return true;
        }
        catch (BlobConditionFailedException)
        {
            return false;
        }
    }

    /// <summary>Where an intake request's tokenized events wait for the queue function (encrypted: amounts and places are customer data).</summary>
    public string IntakeBlob(string tenant, string id) => $"fraud/intake/{tenant}/{id}.json";

    public static bool IsIntakeBlobOf(string tenant, string blob) =>
        blob.StartsWith($"fraud/intake/{tenant}/", StringComparison.Ordinal) && blob.EndsWith(".json", StringComparison.Ordinal) && StorageNames.IsValidBlobName(blob)
        && !blob.AsSpan($"fraud/intake/{tenant}/".Length).Contains('/');

    public Task PutIntakeAsync(string blob, byte[] events, CancellationToken cancellationToken) =>
        Models.PutAsync(blob, new MemoryStream(events, writable: false), BlobCondition.MustNotExist, cancellationToken);

    public Task<byte[]?> GetIntakeAsync(string blob, CancellationToken cancellationToken) =>
        InferenceBlobs.ReadAllAsync(Models, blob, MaxStoredModelBytes, cancellationToken);

    public Task DeleteIntakeAsync(string blob, CancellationToken cancellationToken) => Models.DeleteAsync(blob, cancellationToken: cancellationToken);

    private const long MaxDriftBytes = 256 * 1024;

    private static string DriftPrefix(long revision) => $"drift/r{revision}/";

    /// <summary>Replaces <paramref name="instance"/>'s drift window under <paramref name="revision"/>.</summary>
    public Task PutDriftCountsAsync(long revision, string instance, DriftCounts counts, CancellationToken cancellationToken) =>
        Deployments.PutAsync(DriftPrefix(revision) + instance + ".json", new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(counts, FraudJson.Options)), cancellationToken: cancellationToken);

    /// <summary><paramref name="instance"/>'s stored drift window under <paramref name="revision"/>; null when there is none or it does not parse.</summary>
    public async Task<DriftCounts?> GetDriftCountsAsync(long revision, string instance, CancellationToken cancellationToken)
    {
        try
        {
            return await InferenceBlobs.ReadAllAsync(Deployments, DriftPrefix(revision) + instance + ".json", MaxDriftBytes, cancellationToken) is { } bytes
                ? JsonSerializer.Deserialize<DriftCounts>(bytes, FraudJson.Options)
                : null;
        }
        catch (Exception e) when (e is JsonException or InvalidDataException)
        {
            return null;
        }
    }

    /// <summary>Every instance's stored drift window under <paramref name="revision"/>; a window that does not parse comes back as null, for the caller to report.</summary>
    public async Task<IReadOnlyList<(string Instance, DriftCounts? Counts)>> ListDriftCountsAsync(long revision, CancellationToken cancellationToken)
    {
        var prefix = DriftPrefix(revision);
        var windows = new List<(string, DriftCounts?)>();
        await foreach (var blob in Deployments.ListAsync(prefix, cancellationToken))
        {
            if (!blob.Name.EndsWith(".json", StringComparison.Ordinal)) continue;
            var instance = blob.Name[prefix.Length..^".json".Length];
            windows.Add((instance, await GetDriftCountsAsync(revision, instance, cancellationToken)));
        }
        return windows;
    }

    /// <summary>True for the one caller that first claims <paramref name="revision"/>'s drift alert (so instances raise it once between them).</summary>
    public async Task<bool> TryClaimDriftAlertAsync(long revision, CancellationToken cancellationToken)
    {
        try
        {
            await Deployments.PutAsync(DriftPrefix(revision) + "alerted", new MemoryStream([]), BlobCondition.MustNotExist, cancellationToken);
            return true;
        }
        catch (BlobConditionFailedException)
        {
            return false;
        }
    }

    private static string ModelBlob(string version) => $"fraud/models/{version}/model.onnx";
    private static string InfoBlob(string version) => $"fraud/models/{version}/info.json";
}
