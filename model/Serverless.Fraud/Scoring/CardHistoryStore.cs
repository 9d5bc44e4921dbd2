using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Tokenization;

namespace Serverless.Fraud.Scoring;

/// <summary>
/// Each card's last k encoded events, keyed by card token (never by card number). Implementations:
/// <see cref="InMemoryCardHistoryStore"/>; a shared cache (Redis, Table storage) would implement the same
/// two calls for a scaled-out scorer.
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

    /// <summary>Number of cards held.</summary>
    int Count { get; }
}

/// <summary>A ring buffer per card in one dictionary. Not thread-safe: one per scorer (per partition).</summary>
public sealed class InMemoryCardHistoryStore : ICardHistoryStore
{
    private readonly Dictionary<CardToken, Ring> _cards = [];

    public InMemoryCardHistoryStore(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1024);
        Capacity = capacity;
    }

    public int Capacity { get; }
    public int Count => _cards.Count;

    /// <summary>The tokens held (for tests and audits: there is nothing else to key by).</summary>
    public IEnumerable<CardToken> Cards => _cards.Keys;

    public long? LastTimestampMs(CardToken card) => _cards.TryGetValue(card, out var r) ? r.LastMs : null;

    public int AppendAndCopy(CardToken card, long timestampMs, ReadOnlySpan<float> encodedEvent, Span<float> events)
    {
        const int e = EventFeatures.EventCount;
        if (encodedEvent.Length != e) throw new ArgumentException($"an encoded event has {e} entries", nameof(encodedEvent));
        if (events.Length < Capacity * e) throw new ArgumentException($"window needs {Capacity * e} entries", nameof(events));
        if (!_cards.TryGetValue(card, out var ring)) _cards[card] = ring = new Ring(Capacity);
        encodedEvent.CopyTo(ring.Values.AsSpan(ring.Next * e, e));
        ring.Next = (ring.Next + 1) % Capacity;
        ring.Length = Math.Min(Capacity, ring.Length + 1);
        ring.LastMs = timestampMs;
        var start = (ring.Next - ring.Length + Capacity) % Capacity;
        for (var i = 0; i < ring.Length; i++)
            ring.Values.AsSpan((start + i) % Capacity * e, e).CopyTo(events.Slice(i * e, e));
        return ring.Length;
    }

    private sealed class Ring(int capacity)
    {
        public readonly float[] Values = new float[capacity * EventFeatures.EventCount];
        public int Next;
        public int Length;
        public long LastMs;
    }
}

/// <summary>Turns a transaction into the model's window [k, F] and mask [k], updating the card's history.</summary>
public static class WindowBuilder
{
    /// <summary>
    /// Encodes <paramref name="t"/> against the card's history, appends it, and writes the window (real
    /// steps first, then zeros with mask 0) into <paramref name="window"/> [k, F] and <paramref name="mask"/> [k].
    /// </summary>
    public static int Append(ICardHistoryStore store, CardToken card, Transaction t, Span<float> window, Span<float> mask, Span<float> scratch)
    {
        ArgumentNullException.ThrowIfNull(store);
        var k = store.Capacity;
        const int e = EventFeatures.EventCount;
        const int f = EventFeatures.Count;
        if (window.Length != k * f || mask.Length != k || scratch.Length < k * e + e + EventFeatures.StaticCount)
            throw new ArgumentException("window, mask or scratch has the wrong size");
        var encoded = scratch[..e];
        var events = scratch.Slice(e, k * e);
        var statics = scratch.Slice(e + k * e, EventFeatures.StaticCount);
        EventFeatures.EncodeEvent(t, store.LastTimestampMs(card), encoded);
        EventFeatures.EncodeStatic(t, statics);
        var n = store.AppendAndCopy(card, t.TimestampMs, encoded, events);
        for (var s = 0; s < k; s++)
        {
            var row = window.Slice(s * f, f);
            if (s < n)
            {
                events.Slice(s * e, e).CopyTo(row);
                statics.CopyTo(row[e..]);
                mask[s] = 1;
            }
            else
            {
                row.Clear();
                mask[s] = 0;
            }
        }
        return n;
    }

    public static int ScratchLength(int k) => k * EventFeatures.EventCount + EventFeatures.Count;
}
