using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Azure.Core;
using Azure.Core.Pipeline;

namespace Serverless.Runtime.Storage.Azure;

/// <summary>
/// Signs requests with an account key, per "Authorize with Shared Key" (Blob and Queue services,
/// version 2009-09-19 and later): HMAC-SHA256 over the verb, twelve standard headers, the canonicalized
/// x-ms-* headers and the canonicalized resource, sent as <c>Authorization: SharedKey account:signature</c>.
/// </summary>
internal sealed class SharedKeyPolicy : HttpPipelineSynchronousPolicy
{
    private readonly string _account;
    private readonly byte[] _key;

    public SharedKeyPolicy(string account, string base64Key)
    {
        _account = account;
        try
        {
            _key = Convert.FromBase64String(base64Key);
        }
        catch (FormatException)
        {
            throw new ArgumentException("The storage account key is not valid base64.", nameof(base64Key));
        }
    }

    public override void OnSendingRequest(HttpMessage message)
    {
        var request = message.Request;
        request.Headers.SetValue("x-ms-date", DateTimeOffset.UtcNow.ToString("R", CultureInfo.InvariantCulture));
        var stringToSign = BuildStringToSign(request, _account);
        var signature = Convert.ToBase64String(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(stringToSign)));
        request.Headers.SetValue("Authorization", $"SharedKey {_account}:{signature}");
    }

    internal static string BuildStringToSign(Request request, string account)
    {
        string Header(string name) => request.Headers.TryGetValue(name, out var value) ? value : "";
        var contentLength = request.Content is { } content && content.TryComputeLength(out var length) && length > 0
            ? length.ToString(CultureInfo.InvariantCulture)
            : "";
        var sb = new StringBuilder();
        sb.Append(request.Method.Method.ToUpperInvariant()).Append('\n')
            .Append(Header("Content-Encoding")).Append('\n')
            .Append(Header("Content-Language")).Append('\n')
            .Append(contentLength).Append('\n') // empty when zero (versions 2015-02-21 and later)
            .Append(Header("Content-MD5")).Append('\n')
            .Append(Header("Content-Type")).Append('\n')
            .Append("").Append('\n') // Date: we send x-ms-date instead
            .Append(Header("If-Modified-Since")).Append('\n')
            .Append(Header("If-Match")).Append('\n')
            .Append(Header("If-None-Match")).Append('\n')
            .Append(Header("If-Unmodified-Since")).Append('\n')
            .Append(Header("Range")).Append('\n');

        // Canonicalized headers: x-ms-* lower-cased, sorted, "name:value" with the value trimmed, one per line.
        var msHeaders = new List<(string Name, string Value)>();
        foreach (var header in request.Headers)
            if (header.Name.StartsWith("x-ms-", StringComparison.OrdinalIgnoreCase))
                msHeaders.Add((header.Name.ToLowerInvariant(), header.Value.Trim()));
        msHeaders.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        foreach (var (name, value) in msHeaders) sb.Append(name).Append(':').Append(value).Append('\n');

        // Canonicalized resource: /account/path, then each query parameter lower-cased and sorted, values decoded, sorted, comma-joined.
        var uri = request.Uri.ToUri();
        sb.Append('/').Append(account).Append(uri.AbsolutePath.Length == 0 ? "/" : uri.AbsolutePath);
        var query = uri.Query.TrimStart('?');
        if (query.Length > 0)
        {
            var parameters = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
            foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = pair.IndexOf('=');
                var name = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]).ToLowerInvariant();
                var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
                if (!parameters.TryGetValue(name, out var values)) parameters[name] = values = [];
                values.Add(value);
            }
            foreach (var (name, values) in parameters)
            {
                values.Sort(StringComparer.Ordinal);
                sb.Append('\n').Append(name).Append(':').Append(string.Join(',', values));
            }
        }
        return sb.ToString();
    }
}

/// <summary>Pipeline options: Azure.Core's retries (exponential, with the service's retry-after honoured) and logging.</summary>
internal sealed class StorageClientOptions : ClientOptions
{
    public StorageClientOptions()
    {
        Retry.Mode = RetryMode.Exponential;
        Retry.MaxRetries = 3;
        Retry.Delay = TimeSpan.FromMilliseconds(200);
        Retry.NetworkTimeout = TimeSpan.FromSeconds(60);
    }
}
