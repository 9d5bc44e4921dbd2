using System.Runtime.InteropServices;

namespace Serverless.Fraud.Scoring;

/// <summary>
/// The scorer's state, keyed by card token (never by card number): each card's last k encoded events, and
/// the transaction ids already scored (intake idempotency). Implementations: <see cref="InMemoryCardHistoryStore"/>,
/// <see cref="SqliteCardHistoryStore"/> (survives a restart); a shared cache would implement the same calls
/// for a scaled-out scorer.
/// </summary>
public interface ICardHistoryStore
{
    /// <summary>Steps kept per card (k).</summary>
    int Capacity { get; }

    /// <summary>Timestamp of the card's latest event, or null for an unknown card.</summary>
    long? LastTimestampMs(CardToken card);

    /// <summary>
    /// Appends one encoded event (<see cref="EventFeatures.EventCount"/> floats) and copies the card's
    /// window, oldest first, into <paramref name="events"/> (<c>[Capacity, EventCount]</c>); returns the
    /// number of real steps (the rest of <paramref name="events"/> is left as it was).
    /// </summary>
    int AppendAndCopy(CardToken card, long timestampMs, ReadOnlySpan<float> encodedEvent, Span<float> events);

    /// <summary>
    /// True the first time <paramref name="transactionId"/> is offered (it is then remembered), false when it
    /// was seen before within the store's de-duplication window: a redelivered message is not scored twice.
    /// </summary>
    bool TryClaim(string transactionId);

    /// <summary>
    /// Makes every append and claim since the last commit durable, all at once (a crash before it loses
    /// them all, so redelivered events are scored again against the committed history). No-op in memory.
    /// </summary>
    void Commit();

    /// <summary>Number of cards held.</summary>
    int Count { get; }
}

/// <summary>
/// The in-memory state both stores share: one slab of ring buffers (a slot per card), a dirty list for
/// the durable store, and a bounded first-in-first-out set of claimed transaction ids. Appending never
/// allocates once a card has a slot (the slab grows by doubling).
/// </summary>
internal sealed class CardStateTable
{
    private const int E = EventFeatures.EventCount;
    private readonly Dictionary<CardToken, int> _slots = [];
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Queue<string> _seenOrder = new();
    private readonly List<int> _dirty = [];
    private readonly List<string> _claimed = [];
    private CardToken[] _tokens = new CardToken[256];
    private float[] _values;
    private long[] _lastMs = new long[256];
    private int[] _next = new int[256], _length = new int[256];
    private bool[] _isDirty = new bool[256];
    // The card LastTimestampMs looked up, so the AppendAndCopy that follows needs no second lookup.
    private CardToken _lastCard;
    private int _lastSlot = -1;

    public CardStateTable(int capacity, int dedupeCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1024);
        ArgumentOutOfRangeException.ThrowIfLessThan(dedupeCapacity, 1);
        Capacity = capacity;
        DedupeCapacity = dedupeCapacity;
        _values = new float[256 * capacity * E];
    }

    public int Capacity { get; }
    public int DedupeCapacity { get; }
    public int Count => _slots.Count;
    public IEnumerable<CardToken> Cards => _slots.Keys;
    public int SeenCount => _seen.Count;

    public long? LastTimestampMs(CardToken card)
    {
        if (!_slots.TryGetValue(card, out var slot)) { _lastSlot = -1; return null; }
        _lastCard = card;
        _lastSlot = slot;
        return _lastMs[slot];
    }

    public int AppendAndCopy(CardToken card, long timestampMs, ReadOnlySpan<float> encodedEvent, Span<float> events)
    {
        if (encodedEvent.Length != E) throw new ArgumentException($"an encoded event has {E} entries", nameof(encodedEvent));
        if (events.Length < Capacity * E) throw new ArgumentException($"window needs {Capacity * E} entries", nameof(events));
        var slot = _lastSlot >= 0 && _lastCard == card ? _lastSlot : SlotOf(card);
        _lastSlot = -1;
        var k = Capacity;
        var ring = _values.AsSpan(slot * k * E, k * E);
        encodedEvent.CopyTo(ring.Slice(_next[slot] * E, E));
        _next[slot] = (_next[slot] + 1) % k;
        var length = _length[slot] = Math.Min(k, _length[slot] + 1);
        _lastMs[slot] = timestampMs;
        MarkDirty(slot);
        // Oldest first: the ring from its start to the end of the buffer, then from the buffer's start.
        var start = (_next[slot] - length + k) % k;
        var firstPart = Math.Min(length, k - start);
        ring.Slice(start * E, firstPart * E).CopyTo(events);
        if (firstPart < length) ring[..((length - firstPart) * E)].CopyTo(events[(firstPart * E)..]);
        return length;
    }

    public bool TryClaim(string transactionId)
    {
        if (!_seen.Add(transactionId)) return false;
        _seenOrder.Enqueue(transactionId);
        if (_seenOrder.Count > DedupeCapacity) _seen.Remove(_seenOrder.Dequeue());
        _claimed.Add(transactionId);
        return true;
    }

    /// <summary>Restores one card (from the durable store on open).</summary>
    public void Load(CardToken card, long lastMs, int next, int length, ReadOnlySpan<float> ring)
    {
        if (length < 0 || length > Capacity || next < 0 || next >= Capacity || ring.Length != Capacity * E)
            throw new InvalidDataException("stored card history has the wrong shape");
        var slot = SlotOf(card);
        ring.CopyTo(_values.AsSpan(slot * Capacity * E, Capacity * E));
        _next[slot] = next;
        _length[slot] = length;
        _lastMs[slot] = lastMs;
    }

    /// <summary>Restores one claimed id, oldest first (from the durable store on open).</summary>
    public void LoadClaim(string transactionId)
    {
        if (!_seen.Add(transactionId)) return;
        _seenOrder.Enqueue(transactionId);
        if (_seenOrder.Count > DedupeCapacity) _seen.Remove(_seenOrder.Dequeue());
    }

    /// <summary>The cards changed since the last <see cref="ClearChanges"/>: token, last timestamp, ring position, length and ring.</summary>
    public IEnumerable<int> DirtySlots => _dirty;
    public IReadOnlyList<string> Claimed => _claimed;
    public CardToken TokenAt(int slot) => _tokens[slot];
    public (long LastMs, int Next, int Length) StateAt(int slot) => (_lastMs[slot], _next[slot], _length[slot]);
    public ReadOnlySpan<float> RingAt(int slot) => _values.AsSpan(slot * Capacity * E, Capacity * E);

    public void ClearChanges()
    {
        foreach (var s in _dirty) _isDirty[s] = false;
        _dirty.Clear();
        _claimed.Clear();
    }

    private void MarkDirty(int slot)
    {
        if (_isDirty[slot]) return;
        _isDirty[slot] = true;
        _dirty.Add(slot);
    }

    private int SlotOf(CardToken card)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_slots, card, out var exists);
        if (exists) return slot;
        slot = _slots.Count - 1;
        if (slot == _tokens.Length) Grow();
        _tokens[slot] = card;
        return slot;
    }

    private void Grow()
    {
        var n = _tokens.Length * 2;
        Array.Resize(ref _tokens, n);
        Array.Resize(ref _values, n * Capacity * E);
        Array.Resize(ref _lastMs, n);
        Array.Resize(ref _next, n);
        Array.Resize(ref _length, n);
        Array.Resize(ref _isDirty, n);
    }
}

/// <summary>
/// The stores' common part: reads, appends and claims work on the in-memory <see cref="CardStateTable"/>;
/// a store decides only what <see cref="Commit"/> makes durable.
/// </summary>
public abstract class CardHistoryStore : ICardHistoryStore
{
    /// <summary>Transaction ids remembered by default: at 5,000 events/s, 200 s of traffic (beyond any queue's redelivery delay).</summary>
    public const int DefaultDedupeCapacity = 1_000_000;

    private protected CardHistoryStore(int capacity, int dedupeCapacity) => Table = new CardStateTable(capacity, dedupeCapacity);

    private protected CardStateTable Table { get; }

    public int Capacity => Table.Capacity;
    public int Count => Table.Count;

    /// <summary>The tokens held (for tests and audits: there is nothing else to key by).</summary>
    public IEnumerable<CardToken> Cards => Table.Cards;

    public long? LastTimestampMs(CardToken card) => Table.LastTimestampMs(card);

    public int AppendAndCopy(CardToken card, long timestampMs, ReadOnlySpan<float> encodedEvent, Span<float> events) =>
        Table.AppendAndCopy(card, timestampMs, encodedEvent, events);

    public bool TryClaim(string transactionId) => Table.TryClaim(transactionId);

    public abstract void Commit();
}

/// <summary>Ring buffers per card and the claimed ids, in memory only (lost on restart). Not thread-safe: one per scorer (per partition).</summary>
public sealed class InMemoryCardHistoryStore(int capacity, int dedupeCapacity = CardHistoryStore.DefaultDedupeCapacity)
    : CardHistoryStore(capacity, dedupeCapacity)
{
    // Nothing to make durable; the change lists are dropped so they do not grow.
    public override void Commit() => Table.ClearChanges();
}

/// <summary>Turns an event into the model's window [k, F] and mask [k], updating the card's history.</summary>
public static class WindowBuilder
{
    /// <summary>
    /// Encodes <paramref name="t"/> against the card's history, appends it, and writes the window (real
    /// steps first, then zeros with mask 0) into <paramref name="window"/> [k, F] and <paramref name="mask"/> [k].
    /// </summary>
    public static int Append(ICardHistoryStore store, CardEvent t, Span<float> window, Span<float> mask, Span<float> scratch)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(t);
        var k = store.Capacity;
        const int e = EventFeatures.EventCount;
        const int f = EventFeatures.Count;
        if (window.Length != k * f || mask.Length != k || scratch.Length < k * e + e + EventFeatures.StaticCount)
            throw new ArgumentException("window, mask or scratch has the wrong size");
        var encoded = scratch[..e];
        var events = scratch.Slice(e, k * e);
        var statics = scratch.Slice(e + k * e, EventFeatures.StaticCount);
        EventFeatures.EncodeEvent(t, store.LastTimestampMs(t.Card), encoded);
        EventFeatures.EncodeStatic(t, statics);
        var n = store.AppendAndCopy(t.Card, t.TimestampMs, encoded, events);
        for (var s = 0; s < n; s++)
        {
            var row = window.Slice(s * f, f);
            events.Slice(s * e, e).CopyTo(row);
            statics.CopyTo(row[e..]);
        }
        mask[..n].Fill(1);
        if (n < k)
        {
            window[(n * f)..].Clear();
            mask[n..].Clear();
        }
        return n;
    }

    public static int ScratchLength(int k) => k * EventFeatures.EventCount + EventFeatures.Count;
}
