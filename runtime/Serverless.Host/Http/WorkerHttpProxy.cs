using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;

namespace Serverless.Host.Http;

/// <summary>
/// The host's half of the worker's ASP.NET Core integration (Microsoft.Azure.Functions.Worker.Extensions.Http.AspNetCore,
/// <c>ConfigureFunctionsWebApplication()</c>): a worker that serves HTTP on its own Kestrel reports that
/// server's URI in the <c>HttpUri</c> capability of its WorkerInitResponse. For each HTTP-trigger invocation
/// the host forwards the caller's request there, with the invocation id in <c>x-ms-invocation-id</c> (the
/// worker pairs the request with the InvocationRequest by it), and streams the worker's response back.
/// As the Functions host's forwarder does: X-Forwarded-For/-Proto/-Host are set (the worker's
/// UseForwardedHeaders restores the caller's URL from them, trusting loopback), hop-by-hop headers are not
/// forwarded, redirects and cookies pass through untouched, and a refused connection (the worker's
/// Kestrel still starting) is retried before any body byte is read.
/// </summary>
internal sealed class WorkerHttpProxy : IDisposable
{
    /// <summary>The capability the ASP.NET Core integration reports: the worker's own HTTP server.</summary>
    public const string CapabilityName = "HttpUri";

    /// <summary>The header that carries the invocation id to the worker's Kestrel.</summary>
    public const string InvocationIdHeader = "x-ms-invocation-id";

    // RFC 9110 section 7.6.1 (Connection) and the usual proxy set: meaningful for one connection only.
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix", InvocationIdHeader,
        ClientCertificateHeader.Name,
    };

    private static readonly TimeSpan[] ConnectRetries =
        [TimeSpan.FromMilliseconds(50), TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(200), TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(1)];

    private readonly HttpMessageInvoker _client;
    private Uri _worker;

    private WorkerHttpProxy(Uri worker)
    {
        _worker = worker;
        _client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            // The caller's traceparent is forwarded as a header like any other; no second one is added.
            ActivityHeadersPropagator = null,
        });
    }

    /// <summary>The worker's HTTP server, e.g. http://localhost:52311/.</summary>
    public Uri Worker => Volatile.Read(ref _worker);

    /// <summary>
    /// The proxy for a worker that reported <see cref="CapabilityName"/>, or null (the worker wants RpcHttp).
    /// The URI must be http on a loopback address: the host never forwards a caller's request (with its
    /// function key) anywhere else.
    /// </summary>
    public static WorkerHttpProxy? FromCapabilities(IReadOnlyDictionary<string, string> capabilities) =>
        TryReadUri(capabilities) is { } uri ? new WorkerHttpProxy(uri) : null;

    /// <summary>
    /// Points the proxy at a restarted worker's HTTP server (its port changes with the process). Requests
    /// already forwarded to the old one fail with it, as invocations of a dead worker do.
    /// </summary>
    public void Retarget(IReadOnlyDictionary<string, string> capabilities) =>
        Volatile.Write(ref _worker, TryReadUri(capabilities) ?? throw new HostStartException($"the restarted worker reported no {CapabilityName} capability"));

    private static Uri? TryReadUri(IReadOnlyDictionary<string, string> capabilities)
    {
        if (!capabilities.TryGetValue(CapabilityName, out string? value) || string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        if (!Uri.TryCreate(value, UriKind.Absolute, out Uri? uri) || uri.Scheme != Uri.UriSchemeHttp || !uri.IsLoopback
            || uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
        {
            throw new HostStartException($"the worker's {CapabilityName} capability is not an http URI on loopback");
        }
        return uri;
    }

    /// <summary>
    /// Sends the caller's request to the worker and returns once the worker's response headers arrived
    /// (its body is read by the caller of this method). The request body is streamed, never buffered.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(HttpContext context, string invocationId, CancellationToken cancel)
    {
        for (int attempt = 0; ; attempt++)
        {
            HttpRequestMessage message = BuildRequest(context, invocationId);
            try
            {
                return await _client.SendAsync(message, cancel);
            }
            catch (HttpRequestException e) when (attempt < ConnectRetries.Length && IsRefused(e) && !cancel.IsCancellationRequested)
            {
                // Refused before a connection existed, so no byte of the body was read: safe to send again.
                message.Dispose();
                await Task.Delay(ConnectRetries[attempt], cancel);
            }
        }
    }

    private static bool IsRefused(HttpRequestException e) =>
        e.HttpRequestError == HttpRequestError.ConnectionError
        && e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused };

    private HttpRequestMessage BuildRequest(HttpContext context, string invocationId)
    {
        HttpRequest request = context.Request;
        var target = new Uri(Worker, request.PathBase.Add(request.Path).ToUriComponent() + request.QueryString.ToUriComponent());
        var message = new HttpRequestMessage(new HttpMethod(request.Method), target)
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        bool hasBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? request.ContentLength > 0;
        if (hasBody)
        {
            // A non-disposing wrapper: the request body belongs to Kestrel, the forwarder only reads it.
            message.Content = new StreamContent(new UnownedStream(request.Body), 64 * 1024);
        }
        // Headers the caller named in Connection are for this hop only, too (RFC 9110 section 7.6.1).
        HashSet<string>? alsoHopByHop = request.Headers.Connection.Count == 0 ? null
            : new HashSet<string>(
                request.Headers.Connection.SelectMany(v => (v ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)),
                StringComparer.OrdinalIgnoreCase);
        foreach ((string name, StringValues values) in request.Headers)
        {
            if (HopByHop.Contains(name) || alsoHopByHop?.Contains(name) == true)
            {
                continue;
            }
            if (name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
                continue;
            }
            message.Headers.TryAddWithoutValidation(name, (IEnumerable<string>)values!);
        }
        // Set, not appended, as the Functions host's forwarder does: what a caller claims in these is not kept.
        if (context.Connection.RemoteIpAddress is { } remote)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-For", remote.ToString());
        }
        message.Headers.TryAddWithoutValidation("X-Forwarded-Proto", request.Scheme);
        if (request.Host.HasValue)
        {
            message.Headers.TryAddWithoutValidation("X-Forwarded-Host", request.Host.ToUriComponent());
        }
        if (ClientCertificateHeader.ValueOf(context) is { } certificate)
        {
            message.Headers.TryAddWithoutValidation(ClientCertificateHeader.Name, certificate);
        }
        message.Headers.TryAddWithoutValidation(InvocationIdHeader, invocationId);
        return message;
    }

    /// <summary>The worker's status and headers onto the caller's response (the body is copied apart).</summary>
    public static void CopyResponseHead(HttpResponseMessage from, HttpResponse to)
    {
        to.StatusCode = (int)from.StatusCode;
        CopyHeaders(from.Headers, to);
        CopyHeaders(from.Content.Headers, to);
    }

    private static void CopyHeaders(System.Net.Http.Headers.HttpHeaders from, HttpResponse to)
    {
        foreach (KeyValuePair<string, IEnumerable<string>> header in from)
        {
            if (HopByHop.Contains(header.Key))
            {
                continue;
            }
            // Every value is kept as its own (several Set-Cookie headers stay several).
            to.Headers[header.Key] = new StringValues(header.Value.ToArray());
        }
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Reads through to a stream the forwarder does not own (disposing it does nothing).</summary>
    private sealed class UnownedStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancel) => inner.ReadAsync(buffer, offset, count, cancel);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancel = default) => inner.ReadAsync(buffer, cancel);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
