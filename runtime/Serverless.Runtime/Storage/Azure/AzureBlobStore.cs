using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Xml.Linq;
using Azure;
using Azure.Core;

namespace Serverless.Runtime.Storage.Azure;

/// <summary>Containers of one storage account over the Blob REST API.</summary>
internal sealed class AzureBlobStoreProvider(AzureStorageClient client) : IBlobStoreProvider
{
    private readonly ConcurrentDictionary<string, AzureBlobStore> _containers = new(StringComparer.Ordinal);

    public string BackendName => "azure";

    public IBlobStore GetContainer(string container)
    {
        StorageNames.ThrowIfInvalidContainer(container);
        return _containers.GetOrAdd(container, c => new AzureBlobStore(client, c));
    }
}

/// <summary>
/// One container over the Blob REST API (Put Blob, Get Blob, List Blobs, Delete Blob), creating the
/// container on first write. ETag conditions map to If-Match / If-None-Match; 412 and 409 BlobAlreadyExists
/// become <see cref="BlobConditionFailedException"/>.
/// </summary>
internal sealed class AzureBlobStore(AzureStorageClient client, string container) : IBlobStore
{
    private volatile bool _containerExists;

    private async Task EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (_containerExists) return;
        using var message = client.CreateMessage(RequestMethod.Put, container, ("restype", "container"));
        await client.SendAsync(message, cancellationToken, 201, 409).ConfigureAwait(false);
        _containerExists = true;
    }

    private string BlobPath(string name) => container + "/" + AzureStorageClient.EscapePath(name);

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        ArgumentNullException.ThrowIfNull(content);
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        // Buffer: the pipeline may retry, which needs a replayable body; blobs here are checkpoints and status, not videos.
        var buffer = new MemoryStream();
        await content.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        var bytes = buffer.ToArray();
        using var message = client.CreateMessage(RequestMethod.Put, BlobPath(name));
        message.Request.Headers.SetValue("x-ms-blob-type", "BlockBlob");
        message.Request.Headers.SetValue("Content-Type", "application/octet-stream");
        AddConditions(message.Request, condition);
        message.Request.Content = RequestContent.Create(bytes);
        var response = await client.SendAsync(message, cancellationToken, 201, 409, 412).ConfigureAwait(false);
        if (response.Status != 201) throw new BlobConditionFailedException(name, condition);
        return new BlobProperties(name, Header(response, "ETag"), bytes.Length, LastModified(response));
    }

    public async Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        var message = client.CreateMessage(RequestMethod.Get, BlobPath(name));
        message.BufferResponse = false;
        try
        {
            var response = await client.SendAsync(message, cancellationToken, 200, 404).ConfigureAwait(false);
            if (response.Status == 404)
            {
                message.Dispose();
                return null;
            }
            var length = long.Parse(Header(response, "Content-Length"), CultureInfo.InvariantCulture);
            var properties = new BlobProperties(name, Header(response, "ETag"), length, LastModified(response));
            var stream = message.ExtractResponseContent() ?? new MemoryStream();
            message.Dispose();
            return new BlobDownload(properties, stream);
        }
        catch
        {
            message.Dispose();
            throw;
        }
    }

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        string? marker = null;
        do
        {
            using var message = client.CreateMessage(RequestMethod.Get, container,
                ("restype", "container"), ("comp", "list"), ("prefix", prefix.Length == 0 ? null : prefix), ("marker", marker), ("maxresults", "5000"));
            var response = await client.SendAsync(message, cancellationToken, 200, 404).ConfigureAwait(false);
            if (response.Status == 404) yield break; // no container yet: no blobs
            var xml = XDocument.Parse(response.Content.ToString());
            var root = xml.Root!;
            foreach (var blob in root.Element("Blobs")?.Elements("Blob") ?? [])
            {
                var properties = blob.Element("Properties")!;
                yield return new BlobProperties(
                    blob.Element("Name")!.Value,
                    Quote(properties.Element("Etag")!.Value),
                    long.Parse(properties.Element("Content-Length")!.Value, CultureInfo.InvariantCulture),
                    DateTimeOffset.Parse(properties.Element("Last-Modified")!.Value, CultureInfo.InvariantCulture));
            }
            marker = root.Element("NextMarker")?.Value;
        }
        while (!string.IsNullOrEmpty(marker));
    }

    public async Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        using var message = client.CreateMessage(RequestMethod.Delete, BlobPath(name));
        AddConditions(message.Request, condition);
        var response = await client.SendAsync(message, cancellationToken, 202, 404, 409, 412).ConfigureAwait(false);
        return response.Status switch
        {
            202 => true,
            404 when condition.IfMatch is null => false,
            404 => throw new BlobConditionFailedException(name, condition), // If-Match on a missing blob does not hold
            _ => throw new BlobConditionFailedException(name, condition),
        };
    }

    private static void AddConditions(Request request, BlobCondition condition)
    {
        if (condition.IfMatch is { } ifMatch) request.Headers.SetValue("If-Match", ifMatch == "*" ? "*" : Quote(ifMatch));
        if (condition.IfNoneMatch is { } ifNoneMatch) request.Headers.SetValue("If-None-Match", ifNoneMatch == "*" ? "*" : Quote(ifNoneMatch));
    }

    private static string Quote(string etag) => etag.StartsWith('"') ? etag : "\"" + etag + "\"";

    private static string Header(Response response, string name) =>
        response.Headers.TryGetValue(name, out var value) ? value : throw new RequestFailedException(response.Status, $"Azure Storage response lacks {name}");

    private static DateTimeOffset LastModified(Response response) =>
        response.Headers.TryGetValue("Last-Modified", out var value) ? DateTimeOffset.Parse(value, CultureInfo.InvariantCulture) : DateTimeOffset.UtcNow;
}
