using Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Queues;
using Serverless.Contracts.Inference;

namespace Serverless.Client.Partner;

/// <summary>
/// Submission through the platform's storage account, as a partner granted access to it does it (Azure
/// Storage or Azurite, through Microsoft's SDKs; never a file of the host): upload the encrypted batch to
/// container <c>partner-batches</c> under its tenant, then put a small message (batch id, tenant, model
/// version, blob name, SHA-256, bearer token) on queue <c>partner-batches</c>.
/// </summary>
internal sealed class PartnerQueue(BlobContainerClient batches, QueueClient queue)
{
    public const string Container = InferenceRoutes.PartnerBatchesQueue;
    public const string Queue = InferenceRoutes.PartnerBatchesQueue;
    public const string AccountKeyVariable = "SERVERLESS_STORAGE_ACCOUNT_KEY";

    /// <summary>The largest queue message Azure Storage takes (64 KiB), before base64.</summary>
    private const int MaxMessageBytes = 48 * 1024;

    // The service version Azurite 3.37 and Azure both serve (the SDKs' newest default is ahead of Azurite).
    private const BlobClientOptions.ServiceVersion BlobVersion = BlobClientOptions.ServiceVersion.V2026_06_06;
    private const QueueClientOptions.ServiceVersion QueueVersion = QueueClientOptions.ServiceVersion.V2026_06_06;

    /// <summary>An Azure Storage account (or Azurite); the key comes from <see cref="AccountKeyVariable"/>, never from the command line.</summary>
    public static PartnerQueue OpenAzure(Uri blobEndpoint, Uri queueEndpoint, string account)
    {
        var key = Environment.GetEnvironmentVariable(AccountKeyVariable);
        if (string.IsNullOrEmpty(key)) throw new ArgumentException($"set {AccountKeyVariable} to the storage account key");
        Span<byte> decoded = stackalloc byte[key.Length];
        if (!Convert.TryFromBase64String(key, decoded, out _)) throw new ArgumentException($"{AccountKeyVariable} is not valid base64");
        var credential = new StorageSharedKeyCredential(account, key);
        var blobs = new BlobServiceClient(blobEndpoint, credential, new BlobClientOptions(BlobVersion));
        // Base64 bodies, as the Functions queue trigger expects by default.
        var queues = new QueueServiceClient(queueEndpoint, credential, new QueueClientOptions(QueueVersion) { MessageEncoding = QueueMessageEncoding.Base64 });
        return new(blobs.GetBlobContainerClient(Container), queues.GetQueueClient(Queue));
    }

    /// <summary>Uploads the batch (once: an existing blob must hold the same bytes) and posts the message; returns the message id.</summary>
    public async Task<string> SubmitAsync(string tenant, string batchId, string version, byte[] batch, string token, CancellationToken cancellationToken)
    {
        var blob = $"{tenant}/{batchId}";
        var sha = Convert.ToHexStringLower(SHA256.HashData(batch));
        await batches.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        var client = batches.GetBlobClient(blob);
        try
        {
            await client.UploadAsync(new BinaryData(batch), new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } }, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            await using var existing = await client.OpenReadAsync(cancellationToken: cancellationToken);
            var existingHash = await SHA256.HashDataAsync(existing, cancellationToken);
            if (Convert.ToHexStringLower(existingHash) != sha)
                throw new InvalidOperationException($"blob {Container}/{blob} already holds another batch; use a new --batch-id");
        }
        await queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        // The submission's trace context (ids only, null outside a trace): the batch's processing joins it.
        var message = JsonSerializer.SerializeToUtf8Bytes(
            new PartnerBatchMessage(batchId, tenant, version, blob, sha, token, Serverless.Telemetry.MessageTraceContext.Current()), JsonSerializerOptions.Web);
        if (message.Length > MaxMessageBytes) throw new ArgumentException($"the message is {message.Length} bytes, over the queue's limit (is the token that long?)");
        var receipt = await queue.SendMessageAsync(new BinaryData(message), visibilityTimeout: null, timeToLive: TimeSpan.FromSeconds(-1), cancellationToken);
        return receipt.Value.MessageId;
    }
}
