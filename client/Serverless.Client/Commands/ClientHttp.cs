using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Serverless.Client.Commands;

/// <summary>
/// Every client's HttpClient, made the one way: a named client on IHttpClientFactory with Microsoft's
/// resilience handler. It retries what the server did not act on (429 and 503, honouring Retry-After, and a
/// connection that failed), and, for reads only, the other transient answers (500, 502, 504); a refusal
/// (4xx) is never retried. The agent, partner, admin and simulation clients differ only in their primary
/// handler (TLS trust, client certificate) and timeout.
/// </summary>
internal static class ClientHttp
{
    /// <summary>Retries after the first attempt: exponential backoff from 0.5 s, or the server's Retry-After; all within the client's timeout.</summary>
    public const int MaxRetries = 6;

    /// <summary>
    /// A client for <paramref name="baseAddress"/>: over TLS trusting only <paramref name="serverTrust"/> (and presenting
    /// <paramref name="clientCertificate"/> for mutual TLS), or on plain sockets when no trust root is given (the system's roots).
    /// </summary>
    public static HttpClient Create(string name, Uri baseAddress, TimeSpan timeout, CertificateTrust? serverTrust,
        X509Certificate2? clientCertificate = null, DelegatingHandler? outermost = null) =>
        Create(name, baseAddress, () => serverTrust is null
            ? new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }
            : MutualTls.CreateClientHandler(serverTrust, clientCertificate), timeout, outermost);

    /// <summary>A client for <paramref name="baseAddress"/>; disposing it releases its handler chain.</summary>
    /// <param name="primary">Makes the innermost handler (sockets, TLS); called once per client.</param>
    /// <param name="outermost">A handler to run outside the retries, seeing each logical request once (tests count bodies with it).</param>
    public static HttpClient Create(string name, Uri baseAddress, Func<HttpMessageHandler> primary, TimeSpan timeout, DelegatingHandler? outermost = null)
    {
        var services = new ServiceCollection();
        var builder = services.AddHttpClient(name)
            .ConfigurePrimaryHttpMessageHandler(primary)
            // One handler chain for the client's life: its connections (and client certificate) stay, as with a plain HttpClient.
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan);
        if (outermost is not null) builder.AddHttpMessageHandler(() => outermost);
        builder.AddResilienceHandler("retry", pipeline => pipeline.AddRetry(new HttpRetryStrategyOptions
        {
            MaxRetryAttempts = MaxRetries,
            BackoffType = DelayBackoffType.Exponential,
            Delay = TimeSpan.FromMilliseconds(500),
            MaxDelay = TimeSpan.FromMinutes(2), // a Retry-After up to the rate limiter's window is waited out
            UseJitter = true,
            ShouldRetryAfterHeader = true,
            ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args.Outcome, args.Context)),
        }));
        var provider = services.BuildServiceProvider();
        var handler = provider.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(name);
        return new OwnedHttpClient(handler, provider) { BaseAddress = baseAddress, Timeout = timeout };
    }

    /// <summary>What is worth another attempt: <see cref="IsRetryable(HttpStatusCode?, HttpMethod)"/> for the request's method.</summary>
    private static bool ShouldRetry(Outcome<HttpResponseMessage> outcome, ResilienceContext context)
    {
        var method = outcome.Result?.RequestMessage?.Method ?? context.GetRequestMessage()?.Method ?? HttpMethod.Post;
        return outcome.Exception switch
        {
            HttpRequestException e => IsRetryable(e.StatusCode, method, connectionFailed: e.StatusCode is null),
            null => IsRetryable(outcome.Result?.StatusCode, method),
            _ => false, // cancellation, timeouts of the whole call: the caller decides
        };
    }

    /// <summary>
    /// 429 and 503 mean the server did not act, so any method may be sent again; so may a request whose
    /// connection failed before an answer. 500, 502 and 504 may follow a write that happened: reads only.
    /// </summary>
    internal static bool IsRetryable(HttpStatusCode? status, HttpMethod method, bool connectionFailed = false) => status switch
    {
        HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable => true,
        HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout => method == HttpMethod.Get || method == HttpMethod.Head,
        null => connectionFailed,
        _ => false,
    };

    /// <summary>An HttpClient over the factory's handler chain that releases the chain and the factory with it.</summary>
    private sealed class OwnedHttpClient(HttpMessageHandler handler, ServiceProvider provider) : HttpClient(handler, disposeHandler: true)
    {
        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (disposing) provider.Dispose();
        }
    }
}
