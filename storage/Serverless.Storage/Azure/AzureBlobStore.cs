using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace Serverless.Storage.Azure;

/// <summary>Containers of one storage account, through Azure.Storage.Blobs.</summary>
internal sealed class AzureBlobStoreProvider(BlobServiceClient service) : IBlobStoreProvider
{
    private readonly ConcurrentDictionary<string, AzureBlobStore> _containers = new(StringComparer.Ordinal);

    public string BackendName => "azure";

    public IBlobStore GetContainer(string container)
    {
        StorageNames.ThrowIfInvalidContainer(container);
        return _containers.GetOrAdd(container, c => new AzureBlobStore(service.GetBlobContainerClient(c)));
    }
}

/// <summary>
/// One container, created on first write. Block-blob uploads are atomic at commit, so readers see the old
/// object or the new one. ETag conditions become <see cref="BlobRequestConditions"/>; a failed condition
/// (412 ConditionNotMet, 409 BlobAlreadyExists) becomes <see cref="BlobConditionFailedException"/>.
/// </summary>
internal sealed class AzureBlobStore(BlobContainerClient container) : IBlobStore
{
    private volatile bool _containerExists;

    private async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (_containerExists) return;
        await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        _containerExists = true;
    }

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        ArgumentNullException.ThrowIfNull(content);
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        // A seekable body lets the pipeline retry a single-shot upload; anything else is buffered once.
        var body = content;
        if (!content.CanSeek)
        {
            var buffer = new MemoryStream();
            await content.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
            buffer.Position = 0;
            body = buffer;
        }
        var length = body.Length - body.Position;
        var options = new BlobUploadOptions
        {
            Conditions = Conditions(condition),
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
        };
        try
        {
            var info = await container.GetBlobClient(name).UploadAsync(body, options, cancellationToken).ConfigureAwait(false);
            return new BlobProperties(name, Quote(info.Value.ETag), length, info.Value.LastModified);
        }
        catch (RequestFailedException e) when (IsConditionFailure(e, condition))
        {
            throw new BlobConditionFailedException(name, condition);
        }
        finally
        {
            if (!ReferenceEquals(body, content)) await body.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        try
        {
            var result = await container.GetBlobClient(name).DownloadStreamingAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            var details = result.Value.Details;
            return new BlobDownload(new BlobProperties(name, Quote(details.ETag), details.ContentLength, details.LastModified), result.Value.Content);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null; // BlobNotFound, or ContainerNotFound before the first write
        }
    }

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        var options = new GetBlobsOptions { Prefix = prefix.Length == 0 ? null : prefix };
        await using var pages = container.GetBlobsAsync(options, cancellationToken).AsPages().GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            Page<BlobItem> page;
            try
            {
                if (!await pages.MoveNextAsync().ConfigureAwait(false)) yield break;
                page = pages.Current;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                yield break; // no container yet: no blobs
            }
            foreach (var blob in page.Values)
            {
                var p = blob.Properties;
                yield return new BlobProperties(blob.Name, Quote(p.ETag ?? default), p.ContentLength ?? 0, p.LastModified ?? default);
            }
        }
    }

    public async Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        try
        {
            await container.GetBlobClient(name).DeleteAsync(DeleteSnapshotsOption.None, Conditions(condition), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status == 404 && condition.IfMatch is null)
        {
            return false;
        }
        catch (RequestFailedException e) when (e.Status == 404 || IsConditionFailure(e, condition))
        {
            throw new BlobConditionFailedException(name, condition); // If-Match on a missing blob does not hold either
        }
    }

    private static BlobRequestConditions? Conditions(BlobCondition condition)
    {
        if (condition.IfMatch is null && condition.IfNoneMatch is null) return null;
        return new BlobRequestConditions
        {
            IfMatch = condition.IfMatch is { } m ? ToETag(m) : null,
            IfNoneMatch = condition.IfNoneMatch is { } n ? ToETag(n) : null,
        };
    }

    private static ETag ToETag(string value) => value == "*" ? ETag.All : new ETag(Quote(value));

    private static bool IsConditionFailure(RequestFailedException e, BlobCondition condition) =>
        e.Status == 412
        || (e.Status == 409 && e.ErrorCode == BlobErrorCode.BlobAlreadyExists.ToString())
        || (e.Status == 404 && condition.IfMatch is not null);

    // One spelling of an ETag everywhere: quoted, as Azure sends it in headers.
    private static string Quote(ETag etag) => Quote(etag.ToString());

    private static string Quote(string etag) => etag.StartsWith('"') ? etag : "\"" + etag + "\"";
}
