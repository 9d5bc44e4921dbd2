using System.Globalization;

namespace Serverless.Host.Queues;

/// <summary>
/// host.json <c>extensions.queues</c>, with the Functions host's defaults and meanings
/// (learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json).
/// </summary>
internal sealed record QueueOptions
{
    /// <summary>Messages fetched and run in parallel per function (1..32; Azure's limit per receive).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>When no more than this many are still running, the next batch is fetched (default batchSize / 2).</summary>
    public int? NewBatchThreshold { get; init; }

    /// <summary>Failed deliveries before the message moves to <c>&lt;queue&gt;-poison</c>.</summary>
    public int MaxDequeueCount { get; init; } = 5;

    /// <summary>How long a failed message stays hidden before its next delivery.</summary>
    public TimeSpan VisibilityTimeout { get; init; } = TimeSpan.Zero;

    /// <summary>Longest wait between polls of an empty queue (backs off from 100 ms).</summary>
    public TimeSpan MaxPollingInterval { get; init; } = TimeSpan.FromMinutes(1);

    public int EffectiveNewBatchThreshold => NewBatchThreshold ?? BatchSize / 2;

    public static QueueOptions Parse(JsonElement queues)
    {
        var options = new QueueOptions();
        foreach (JsonProperty setting in queues.EnumerateObject())
        {
            options = setting.Name.ToLowerInvariant() switch
            {
                "batchsize" => options with { BatchSize = Int(setting, 1, 32) },
                "newbatchthreshold" => options with { NewBatchThreshold = Int(setting, 0, 1000) },
                "maxdequeuecount" => options with { MaxDequeueCount = Int(setting, 1, 1000) },
                "visibilitytimeout" => options with { VisibilityTimeout = Span(setting, TimeSpan.Zero, TimeSpan.FromDays(7)) },
                "maxpollinginterval" => options with { MaxPollingInterval = Span(setting, TimeSpan.FromMilliseconds(100), TimeSpan.FromDays(1)) },
                // messageEncoding matters for Azure queues (base64 by default); the embedded queue keeps raw bytes.
                _ => options,
            };
        }
        return options;
    }

    private static int Int(JsonProperty setting, int min, int max) =>
        setting.Value.ValueKind == JsonValueKind.Number && setting.Value.TryGetInt32(out int value) && value >= min && value <= max
            ? value
            : throw new HostStartException($"host.json: extensions.queues.{setting.Name}: must be a whole number between {min} and {max}");

    private static TimeSpan Span(JsonProperty setting, TimeSpan min, TimeSpan max) =>
        setting.Value.ValueKind == JsonValueKind.String
        && TimeSpan.TryParse(setting.Value.GetString(), CultureInfo.InvariantCulture, out TimeSpan value) && value >= min && value <= max
            ? value
            : throw new HostStartException($"host.json: extensions.queues.{setting.Name}: must be a time span (hh:mm:ss) between {min} and {max}");
}
