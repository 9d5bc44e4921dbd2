using System.Xml.Linq;
using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Identity;
using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Runtime.Storage.Azure;

/// <summary>The HTTP pipeline and endpoint shared by the Blob and Queue REST clients.</summary>
internal sealed class AzureStorageClient
{
    /// <summary>The REST API version we speak (supported by Azurite with --skipApiVersionCheck and by Azure).</summary>
    public const string ApiVersion = "2021-08-06";

    public AzureStorageClient(Uri endpoint, HttpPipeline pipeline)
    {
        Endpoint = new Uri(endpoint.ToString().TrimEnd('/') + "/");
        Pipeline = pipeline;
    }

    public Uri Endpoint { get; }
    public HttpPipeline Pipeline { get; }

    public static AzureStorageClient WithSharedKey(Uri endpoint, string account, string key) =>
        new(endpoint, HttpPipelineBuilder.Build(new StorageClientOptions(), new SharedKeyPolicy(account, key)));

    public static AzureStorageClient WithToken(Uri endpoint, TokenCredential credential) =>
        new(endpoint, HttpPipelineBuilder.Build(new StorageClientOptions(),
            new BearerTokenAuthenticationPolicy(credential, "https://storage.azure.com/.default")));

    public static AzureStorageClient FromOptions(StoreBackendOptions options)
    {
        var endpoint = new Uri(options.Endpoint!);
        if (options.Authentication == AzureAuthentication.Token)
            return WithToken(endpoint, new DefaultAzureCredential());
        var key = Environment.GetEnvironmentVariable(options.AccountKeyEnvironmentVariable);
        if (string.IsNullOrEmpty(key))
            throw new InvalidOperationException($"storage: the account key is expected in environment variable {options.AccountKeyEnvironmentVariable}, which is not set.");
        return WithSharedKey(endpoint, options.AccountName!, key);
    }

    public HttpMessage CreateMessage(RequestMethod method, string relativePath, params (string Name, string? Value)[] query)
    {
        var message = Pipeline.CreateMessage();
        var request = message.Request;
        request.Method = method;
        var uri = new RequestUriBuilder();
        uri.Reset(Endpoint);
        uri.AppendPath(relativePath, escape: false);
        foreach (var (name, value) in query)
            if (value is not null) uri.AppendQuery(name, value, escapeValue: true);
        request.Uri = uri;
        request.Headers.SetValue("x-ms-version", ApiVersion);
        return message;
    }

    /// <summary>Sends and returns the response; statuses other than <paramref name="expected"/> become <see cref="RequestFailedException"/>.</summary>
    public async Task<Response> SendAsync(HttpMessage message, CancellationToken cancellationToken, params int[] expected)
    {
        await Pipeline.SendAsync(message, cancellationToken).ConfigureAwait(false);
        var response = message.Response;
        if (Array.IndexOf(expected, response.Status) < 0) throw Failure(response);
        return response;
    }

    public static RequestFailedException Failure(Response response)
    {
        var code = response.Headers.TryGetValue("x-ms-error-code", out var c) ? c : null;
        string? detail = null;
        try
        {
            if (response.Content is { } content && content.ToMemory().Length > 0)
                detail = XDocument.Parse(content.ToString()).Root?.Element("Message")?.Value;
        }
        catch (System.Xml.XmlException)
        {
        }
        return new RequestFailedException(response.Status, $"Azure Storage answered {response.Status} {code}: {detail ?? response.ReasonPhrase}", code, null);
    }

    /// <summary>Percent-encodes each '/'-separated segment of a blob name.</summary>
    public static string EscapePath(string name) => string.Join('/', name.Split('/').Select(Uri.EscapeDataString));
}

internal static class AzureStorageFactory
{
    public static IBlobStoreProvider CreateBlobProvider(StoreBackendOptions options) => new AzureBlobStoreProvider(AzureStorageClient.FromOptions(options));

    public static IQueueStore CreateQueueStore(StoreBackendOptions options) => new AzureQueueStore(AzureStorageClient.FromOptions(options));
}
