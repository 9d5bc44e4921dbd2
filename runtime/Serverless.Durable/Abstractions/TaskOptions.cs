namespace Serverless.Durable;

/// <summary>
/// Automatic retries of an activity or sub-orchestration. Attempt n (n ≥ 2) waits
/// <c>min(FirstRetryInterval · BackoffCoefficient^(n-2), MaxRetryInterval)</c> on a durable timer;
/// no retry starts after <see cref="RetryTimeout"/> has elapsed since the first attempt.
/// </summary>
public sealed record RetryPolicy
{
    public RetryPolicy(int maxNumberOfAttempts, TimeSpan firstRetryInterval, double backoffCoefficient = 1.0, TimeSpan? maxRetryInterval = null, TimeSpan? retryTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxNumberOfAttempts, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(firstRetryInterval, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfLessThan(backoffCoefficient, 1.0);
        if (maxRetryInterval is { } max) ArgumentOutOfRangeException.ThrowIfLessThan(max, firstRetryInterval);
        if (retryTimeout is { } t) ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(t, TimeSpan.Zero);
        MaxNumberOfAttempts = maxNumberOfAttempts;
        FirstRetryInterval = firstRetryInterval;
        BackoffCoefficient = backoffCoefficient;
        MaxRetryInterval = maxRetryInterval ?? TimeSpan.FromHours(1);
        RetryTimeout = retryTimeout ?? Timeout.InfiniteTimeSpan;
    }

    public int MaxNumberOfAttempts { get; }
    public TimeSpan FirstRetryInterval { get; }
    public double BackoffCoefficient { get; }
    public TimeSpan MaxRetryInterval { get; }
    /// <summary><see cref="Timeout.InfiniteTimeSpan"/> when retries are bounded only by the attempt count.</summary>
    public TimeSpan RetryTimeout { get; }

    /// <summary>Delay before attempt <paramref name="attempt"/> (2 for the first retry).</summary>
    public TimeSpan DelayBeforeAttempt(int attempt)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 2);
        var ticks = FirstRetryInterval.Ticks * Math.Pow(BackoffCoefficient, attempt - 2);
        return ticks >= MaxRetryInterval.Ticks ? MaxRetryInterval : TimeSpan.FromTicks((long)ticks);
    }
}

/// <summary>Options of one activity or sub-orchestration call.</summary>
public record TaskOptions(RetryPolicy? Retry = null)
{
    public static TaskOptions FromRetryPolicy(RetryPolicy policy) => new(policy);
}

/// <summary>Options of a sub-orchestration call: an explicit instance id (otherwise one is derived deterministically).</summary>
public sealed record SubOrchestrationOptions(string? InstanceId = null, RetryPolicy? Retry = null) : TaskOptions(Retry);
