using System.Diagnostics;

namespace Serverless.Durable.Core;

/// <summary>
/// Runs orchestrator continuations one at a time on the thread that drains it, in the order they
/// were posted, so every replay resumes awaits in the same order.
/// </summary>
internal sealed class OrchestrationSynchronizationContext : SynchronizationContext
{
    private readonly Queue<(SendOrPostCallback Callback, object? State)> _work = new();
    private readonly int _ownerThread = Environment.CurrentManagedThreadId;

    public override void Post(SendOrPostCallback d, object? state) => _work.Enqueue((d, state));

    public override void Send(SendOrPostCallback d, object? state)
    {
        Debug.Assert(Environment.CurrentManagedThreadId == _ownerThread, "orchestrator code must not leave its scheduling thread");
        d(state);
    }

    public override SynchronizationContext CreateCopy() => this;

    /// <summary>Runs queued continuations until none is left.</summary>
    public void Drain()
    {
        while (_work.TryDequeue(out var item)) item.Callback(item.State);
    }

    /// <summary>Runs <paramref name="action"/> with this context installed, then drains it.</summary>
    public void Run(Action action)
    {
        var previous = Current;
        SetSynchronizationContext(this);
        try
        {
            action();
            Drain();
        }
        finally
        {
            SetSynchronizationContext(previous);
        }
    }
}
