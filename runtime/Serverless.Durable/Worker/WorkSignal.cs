namespace Serverless.Durable.Worker;

/// <summary>Wakes every idle poller at once when work is enqueued in this process.</summary>
internal sealed class WorkSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Take this before polling: a <see cref="Set"/> after it completes it, so no wake-up is missed.</summary>
    public Task Current => Volatile.Read(ref _next).Task;

    public void Set() => Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Waits for <paramref name="signal"/> or <paramref name="delay"/>, whichever comes first.</summary>
    public static async Task WaitAsync(Task signal, TimeSpan delay, TimeProvider time, CancellationToken cancellationToken)
    {
        if (signal.IsCompleted) return;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timeout = Task.Delay(delay, time, cts.Token);
        await Task.WhenAny(signal, timeout);
        await cts.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
    }
}
