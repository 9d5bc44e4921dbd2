using System.Security.Cryptography;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// Where encrypted inference keeps its objects. Every partner object sits under the partner's tenant
/// prefix, so a name alone never reaches another tenant's data.
/// <list type="table">
/// <item><c>checkpoints/inference/{version}/model</c>: the HE-friendly model (envelope-encrypted container)</item>
/// <item><c>checkpoints/inference/{version}/package.json</c>: what partners download (plan, preprocessing statistics)</item>
/// <item><c>partner-keys/{tenant}/{version}/evaluation-keys</c> and <c>.../registration.json</c>: public evaluation keys</item>
/// <item><c>partner-keys/key-ids/{keyId}.json</c>: which tenant registered a key bundle (refuses keys of another partner)</item>
/// <item><c>partner-batches/{tenant}/{name}</c>: encrypted batches as the partner uploaded them (never deleted by the server)</item>
/// <item><c>partner-results/{tenant}/{batchId}/groups/{g}</c>, <c>.../scores</c>: per-group and joined encrypted results</item>
/// <item><c>partner-results/{tenant}/{batchId}/refusal.json</c>: a refusal decided before any orchestration started</item>
/// </list>
/// </summary>
public sealed class InferenceBlobs(IBlobStoreProvider provider)
{
    public const string ModelContainer = "checkpoints";
    public const string KeysContainer = "partner-keys";
    public const string BatchesContainer = "partner-batches";
    public const string ResultsContainer = "partner-results";

    /// <summary>The queue partners post batch messages to; its poison queue is <c>partner-batches-poison</c>.</summary>
    public const string BatchQueue = "partner-batches";

    public IBlobStore Models => provider.GetContainer(ModelContainer);
    public IBlobStore Keys => provider.GetContainer(KeysContainer);
    public IBlobStore Batches => provider.GetContainer(BatchesContainer);
    public IBlobStore Results => provider.GetContainer(ResultsContainer);

    public static string ModelBlob(string version) => $"inference/{version}/model";
    public static string PackageBlob(string version) => $"inference/{version}/package.json";
    public static string EntitlementBlob(string version) => $"inference/{version}/tenants.json";
    public static string KeyBundleBlob(string tenant, string version) => $"{tenant}/{version}/evaluation-keys";
    public static string RegistrationBlob(string tenant, string version) => $"{tenant}/{version}/registration.json";
    public static string KeyIdBlob(string keyId) => $"key-ids/{keyId}.json";
    public static string UploadedBatchBlob(string tenant, string batchId) => $"{tenant}/{batchId}";
    public static string GroupResultBlob(string tenant, string batchId, int group) => $"{tenant}/{batchId}/groups/{group:D5}";
    public static string ResultBlob(string tenant, string batchId) => $"{tenant}/{batchId}/scores";
    public static string RefusalBlob(string tenant, string batchId) => $"{tenant}/{batchId}/refusal.json";

    /// <summary>A batch blob named by a message must sit under the submitting tenant's prefix.</summary>
    public static bool IsTenantBlob(string tenant, string blob) =>
        blob.StartsWith(tenant + "/", StringComparison.Ordinal) && blob.Length > tenant.Length + 1 && StorageNames.IsValidBlobName(blob);

    public static async Task<byte[]?> ReadAllAsync(IBlobStore store, string name, long maxBytes, CancellationToken cancellationToken)
    {
        await using var download = await store.GetAsync(name, cancellationToken);
        if (download is null) return null;
        if (download.Properties.Length > maxBytes)
            throw new InvalidDataException($"blob '{name}' is {download.Properties.Length} bytes, over the limit of {maxBytes}");
        using var buffer = new MemoryStream(checked((int)Math.Max(0, download.Properties.Length)));
        await download.Content.CopyToAsync(buffer, cancellationToken);
        return buffer.ToArray();
    }

    public static string Sha256Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));
}
