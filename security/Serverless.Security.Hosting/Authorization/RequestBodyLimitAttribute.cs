namespace Serverless.Security.Authorization;

/// <summary>
/// The largest request body a function accepts: the app's middleware answers 413 ProblemDetails above it before the
/// body is read (the server's global limit, SecurityOptions.MaxRequestBodyBytes, still applies).
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class)]
public sealed class RequestBodyLimitAttribute(long maxBytes) : Attribute
{
    public long MaxBytes { get; } = maxBytes > 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes));
}
