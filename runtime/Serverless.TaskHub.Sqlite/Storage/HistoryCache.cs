namespace Serverless.TaskHub.Sqlite.Storage;

/// <summary>
/// The history each live instance had after its last checkpoint in this process, so the next
/// claim need not read and deserialize it again. An entry is used only when the claimed row's
/// execution id and history count still match: within one execution history is append-only, and
/// a new execution has a new id, so a match means the stored history is the cached one (even if
/// another process wrote it). Bounded: past <see cref="Capacity"/> entries it starts over.
/// </summary>
internal sealed class HistoryCache
{
    private const int Capacity = 4096;

    private readonly Dictionary<string, (string ExecutionId, HistoryEvent[] Events)> _entries = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    public bool TryGet(string instanceId, string executionId, int count, out HistoryEvent[] events)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(instanceId, out var entry) && entry.Events.Length == count
                && string.Equals(entry.ExecutionId, executionId, StringComparison.Ordinal))
            {
                events = entry.Events;
                return true;
            }
        }
        events = [];
        return false;
    }

    public void Set(string instanceId, string executionId, IList<HistoryEvent> events)
    {
        var copy = new HistoryEvent[events.Count];
        events.CopyTo(copy, 0);
        lock (_gate)
        {
            if (_entries.Count >= Capacity && !_entries.ContainsKey(instanceId)) _entries.Clear();
            _entries[instanceId] = (executionId, copy);
        }
    }

    public void Remove(string instanceId)
    {
        lock (_gate) _entries.Remove(instanceId);
    }
}
