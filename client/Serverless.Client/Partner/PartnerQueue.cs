using System.Security.Cryptography;
using System.Text.Json;
using Serverless.Storage;

namespace Serverless.Client.Partner;

/// <summary>
/// Submission through storage, as a partner with access to the platform's storage account does it:
/// upload the encrypted batch to container <c>partner-batches</c> under its tenant, then put a small
/// message (batch id, tenant, model version, blob name, SHA-256, bearer token) on queue <c>partner-batches</c>.
/// Storage is either the host's embedded data directory or an Azure Storage account (Azurite).
/// </summary>
internal sealed class PartnerQueue(IBlobStore batches, IQueueStore queues) : IDisposable
{
    public const string Container = "partner-batches";
    public const string Queue = "partner-batches";
    public const string AccountKeyVariable = "SERVERLESS_STORAGE_ACCOUNT_KEY";

    /// <summary>The embedded stores of a host's data directory (the same files the host opens).</summary>
    public static PartnerQueue OpenEmbedded(string dataDirectory) => new(
        Stores.OpenEmbeddedBlobContainer(System.IO.Path.Combine(dataDirectory, "blobs", Container)),
        Stores.OpenEmbeddedQueues(System.IO.Path.Combine(dataDirectory, "queues.db")));

    /// <summary>An Azure Storage account (or Azurite); the key comes from <see cref="AccountKeyVariable"/>, never from the command line.</summary>
    public static PartnerQueue OpenAzure(Uri blobEndpoint, Uri queueEndpoint, string account)
    {
        var key = Environment.GetEnvironmentVariable(AccountKeyVariable);
        if (string.IsNullOrEmpty(key)) throw new ArgumentException($"set {AccountKeyVariable} to the storage account key");
        return new(Stores.OpenAzureBlobs(blobEndpoint, account, key).GetContainer(Container), Stores.OpenAzureQueues(queueEndpoint, account, key));
    }

    /// <summary>Uploads the batch (once: an existing blob must hold the same bytes) and posts the message; returns the message id.</summary>
    public async Task<string> SubmitAsync(string tenant, string batchId, string version, byte[] batch, string token, CancellationToken cancellationToken)
    {
        var blob = $"{tenant}/{batchId}";
        var sha = Convert.ToHexStringLower(SHA256.HashData(batch));
        try
        {
            await batches.PutAsync(blob, new MemoryStream(batch, writable: false), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
            await using var existing = await batches.GetAsync(blob, cancellationToken)
                ?? throw new InvalidOperationException($"blob {Container}/{blob} vanished while uploading; retry");
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[81920];
            int read;
            while ((read = await existing.Content.ReadAsync(buffer, cancellationToken)) > 0) hash.AppendData(buffer, 0, read);
            if (Convert.ToHexStringLower(hash.GetHashAndReset()) != sha)
                throw new InvalidOperationException($"blob {Container}/{blob} already holds another batch; use a new --batch-id");
        }
        await queues.CreateQueueAsync(Queue, cancellationToken);
        var message = JsonSerializer.SerializeToUtf8Bytes(new
        {
            batchId, tenant, modelVersion = version, blob, sha256 = sha, token,
            // The submission's trace context (ids only, null outside a trace): the batch's processing joins it.
            traceParent = Serverless.Telemetry.MessageTraceContext.Current(),
        }, JsonSerializerOptions.Web);
        if (message.Length > IQueueStore.MaxMessageBytes) throw new ArgumentException($"the message is {message.Length} bytes, over the queue's 64 KB (is the token that long?)");
        return await queues.PutAsync(Queue, message, cancellationToken: cancellationToken);
    }

    public void Dispose()
    {
        (queues as IDisposable)?.Dispose();
        (batches as IDisposable)?.Dispose();
    }
}
