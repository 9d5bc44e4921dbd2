using System.Text;
using Serverless.Durable.Core;
using Serverless.Durable.History;
using Serverless.Runtime.Storage;

namespace Serverless.Durable.Payloads;

/// <summary>
/// Moves payloads over the threshold to the blob store and leaves a reference in their place.
/// A reference starts with '@', which no JSON text can, so it is never mistaken for a value.
/// </summary>
internal sealed class PayloadStore(IBlobStore? blobs, string hubName, int threshold)
{
    private const string Prefix = "@blob:";

    public static bool IsReference(string? payload) => payload is not null && payload.StartsWith(Prefix, StringComparison.Ordinal);

    public bool Enabled => blobs is not null;

    public async ValueTask<string?> ExternalizeAsync(string? payload, CancellationToken cancellationToken)
    {
        if (blobs is null || payload is null || payload.Length <= threshold || IsReference(payload)) return payload;
        var name = $"durable/{hubName.ToLowerInvariant()}/payloads/{Guid.NewGuid():N}.json";
        using var content = new MemoryStream(Encoding.UTF8.GetBytes(payload), writable: false);
        await blobs.PutAsync(name, content, BlobCondition.MustNotExist, cancellationToken);
        return Prefix + name;
    }

    public async ValueTask<string?> ResolveAsync(string? payload, CancellationToken cancellationToken)
    {
        if (!IsReference(payload)) return payload;
        if (blobs is null) throw new InvalidOperationException("A payload is stored in the blob store, but no blob store is configured.");
        var name = payload![Prefix.Length..];
        await using var download = await blobs.GetAsync(name, cancellationToken)
            ?? throw new InvalidDataException($"The large payload blob '{name}' referenced from history is missing.");
        using var reader = new StreamReader(download.Content, Encoding.UTF8);
        return await reader.ReadToEndAsync(cancellationToken);
    }

    /// <summary>Deletes the blob behind a reference (purge); a missing blob is fine.</summary>
    public async ValueTask DeleteAsync(string reference, CancellationToken cancellationToken)
    {
        if (blobs is null || !IsReference(reference)) return;
        await blobs.DeleteAsync(reference[Prefix.Length..], BlobCondition.None, cancellationToken);
    }

    /// <summary>Applies <paramref name="map"/> to every payload of an event (returns the same instance when nothing changed).</summary>
    public static HistoryEvent MapPayloads(HistoryEvent e, Func<string?, string?> map) => e switch
    {
        ExecutionStarted s when Changed(s.Input, map, out var v) => s with { Input = v },
        TaskScheduled s when Changed(s.Input, map, out var v) => s with { Input = v },
        TaskCompleted c when Changed(c.Result, map, out var v) => c with { Result = v },
        EventRaised r when Changed(r.Input, map, out var v) => r with { Input = v },
        SubOrchestrationInstanceCreated s when Changed(s.Input, map, out var v) => s with { Input = v },
        SubOrchestrationInstanceCompleted c when Changed(c.Result, map, out var v) => c with { Result = v },
        ContinuedAsNew c when Changed(c.Input, map, out var v) => c with { Input = v },
        ExecutionCompleted c when Changed(c.Result, map, out var v) => c with { Result = v },
        _ => e,
    };

    private static bool Changed(string? value, Func<string?, string?> map, out string? mapped)
    {
        mapped = map(value);
        return !ReferenceEquals(mapped, value);
    }

    /// <summary>Resolves every reference in <paramref name="events"/> (fetching each blob once).</summary>
    public async ValueTask<IReadOnlyList<HistoryEvent>> ResolveAllAsync(IReadOnlyList<HistoryEvent> events, CancellationToken cancellationToken)
    {
        Dictionary<string, string?>? resolved = null;
        foreach (var e in events)
            MapPayloads(e, p =>
            {
                if (IsReference(p)) (resolved ??= [])[p!] = null;
                return p;
            });
        if (resolved is null) return events;
        foreach (var key in resolved.Keys.ToList()) resolved[key] = await ResolveAsync(key, cancellationToken);
        var result = new HistoryEvent[events.Count];
        for (var i = 0; i < events.Count; i++)
            result[i] = MapPayloads(events[i], p => IsReference(p) ? resolved[p!] : p);
        return result;
    }

    /// <summary>Externalizes every large payload of an episode's outcome in place.</summary>
    public async ValueTask ExternalizeOutcomeAsync(EpisodeOutcome outcome, CancellationToken cancellationToken)
    {
        if (blobs is null) return;
        var large = new Dictionary<string, string?>(StringComparer.Ordinal);
        void Collect(string? p) { if (p is not null && p.Length > threshold && !IsReference(p)) large[p] = null; }
        foreach (var e in outcome.NewEvents) MapPayloads(e, p => { Collect(p); return p; });
        foreach (var s in outcome.NewSubOrchestrations) Collect(s.Started.Input);
        foreach (var m in outcome.OutboundMessages) MapPayloads(m.Event, p => { Collect(p); return p; });
        foreach (var c in outcome.CarriedOverEvents) Collect(c.Input);
        Collect(outcome.Output);
        Collect(outcome.CustomStatus);
        Collect(outcome.ContinueAsNew?.Input);
        if (large.Count == 0) return;
        foreach (var key in large.Keys.ToList()) large[key] = await ExternalizeAsync(key, cancellationToken);
        string? Map(string? p) => p is not null && large.TryGetValue(p, out var r) ? r : p;

        for (var i = 0; i < outcome.NewEvents.Count; i++) outcome.NewEvents[i] = MapPayloads(outcome.NewEvents[i], Map);
        for (var i = 0; i < outcome.NewActivities.Count; i++) outcome.NewActivities[i] = (TaskScheduled)MapPayloads(outcome.NewActivities[i], Map);
        for (var i = 0; i < outcome.NewSubOrchestrations.Count; i++)
        {
            var s = outcome.NewSubOrchestrations[i];
            outcome.NewSubOrchestrations[i] = s with { Started = (ExecutionStarted)MapPayloads(s.Started, Map) };
        }
        for (var i = 0; i < outcome.OutboundMessages.Count; i++)
            outcome.OutboundMessages[i] = outcome.OutboundMessages[i] with { Event = MapPayloads(outcome.OutboundMessages[i].Event, Map) };
        for (var i = 0; i < outcome.CarriedOverEvents.Count; i++) outcome.CarriedOverEvents[i] = (EventRaised)MapPayloads(outcome.CarriedOverEvents[i], Map);
        outcome.Output = Map(outcome.Output);
        outcome.CustomStatus = Map(outcome.CustomStatus);
        if (outcome.ContinueAsNew is { } next) outcome.ContinueAsNew = (ExecutionStarted)MapPayloads(next, Map);
    }
}
