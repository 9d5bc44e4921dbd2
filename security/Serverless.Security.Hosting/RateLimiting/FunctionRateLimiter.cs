using System.Threading.RateLimiting;

namespace Serverless.Security.RateLimiting;

/// <summary>Per-principal and per-function fixed windows for function invocations (no queueing).</summary>
public sealed class FunctionRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<(HttpContext Http, string Function, int? Permits)> _limiter;

    public FunctionRateLimiter(RateLimitOptions options)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        _limiter = PartitionedRateLimiter.CreateChained(
            PartitionedRateLimiter.Create<(HttpContext Http, string Function, int? Permits), string>(key =>
                RateLimitPartition.GetFixedWindowLimiter("principal:" + RateLimits.PrincipalKey(key.Http), _ => Window(options.PermitsPerPrincipal))),
            PartitionedRateLimiter.Create<(HttpContext Http, string Function, int? Permits), string>(key =>
            {
                var permits = key.Permits ?? options.PermitsPerEndpoint;
                return RateLimitPartition.GetFixedWindowLimiter($"function:{key.Function}|{RateLimits.PrincipalKey(key.Http)}", _ => Window(permits));
            }));
    }

    public RateLimitOptions Options { get; }

    /// <param name="permitsPerWindow">The function's own limit (<see cref="EndpointRateLimitAttribute"/>); null: the default per endpoint.</param>
    public RateLimitLease Acquire(HttpContext http, string functionName, int? permitsPerWindow) => _limiter.AttemptAcquire((http, functionName, permitsPerWindow));

    private FixedWindowRateLimiterOptions Window(int permits) => new() { PermitLimit = permits, Window = Options.Window, QueueLimit = 0, AutoReplenishment = true };

    public void Dispose() => _limiter.Dispose();
}
