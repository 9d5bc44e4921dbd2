namespace Serverless.TaskHub.Sqlite.Storage;

/// <summary>Wakes every waiting LockNext* call of this process at once when work is enqueued.</summary>
internal sealed class WorkSignal
{
    private TaskCompletionSource _next = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Take this before looking for work: a <see cref="Set"/> after that completes it, so no wake-up is missed.</summary>
    public Task Current => Volatile.Read(ref _next).Task;

    public void Set() =>
        Interlocked.Exchange(ref _next, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Waits for <paramref name="signal"/> or <paramref name="delay"/>, whichever comes first.</summary>
    public static async Task WaitAsync(Task signal, TimeSpan delay, TimeProvider time, CancellationToken cancellationToken)
    {
        if (signal.IsCompleted || delay <= TimeSpan.Zero) return;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var timeout = Task.Delay(delay, time, cts.Token);
        await Task.WhenAny(signal, timeout).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
    }
}
