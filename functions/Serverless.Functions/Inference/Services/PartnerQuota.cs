using System.Globalization;
using Microsoft.Extensions.Options;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// Caps the records a partner may have scored per UTC day (<see cref="InferenceOptions.MaxRecordsPerPartnerPerDay"/>).
/// Every evaluation answers one query about the model, so a partner that may query without limit can
/// reconstruct the weights (8,192 exact evaluations per ciphertext); the cap bounds what any one
/// partner learns per day, whatever it encrypts. The day's usage is one blob per tenant
/// (<c>partner-results/{tenant}/~usage/{yyyyMMdd}.json</c>; "~" cannot start a batch id), updated with
/// If-Match, and lists the batches charged so a retried validation charges a batch once.
/// </summary>
public sealed class PartnerQuota(InferenceBlobs blobs, IOptions<InferenceOptions> options, TimeProvider time)
{
    private const int MaxBatchesListed = 100_000;

    /// <summary>The day's usage blob of a tenant.</summary>
    public static string UsageBlob(string tenant, DateTimeOffset day) =>
        $"{tenant}/~usage/{day.UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture)}.json";

    /// <summary>Charges <paramref name="records"/> for <paramref name="batchId"/> to today's usage; null when within the cap, else the refusal reason.</summary>
    public async Task<string?> ChargeAsync(string tenant, string batchId, long records, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(records);
        var cap = options.Value.MaxRecordsPerPartnerPerDay;
        var name = UsageBlob(tenant, time.GetUtcNow());
        for (var attempt = 0; ; attempt++)
        {
            Usage usage;
            string? etag;
            await using (var current = await blobs.Results.GetAsync(name, cancellationToken))
            {
                if (current is null) { usage = new Usage(0, []); etag = null; }
                else
                {
                    usage = await JsonSerializer.DeserializeAsync<Usage>(current.Content, JsonSerializerOptions.Web, cancellationToken) ?? new Usage(0, []);
                    etag = current.Properties.ETag;
                }
            }
            if (usage.Batches.Contains(batchId, StringComparer.Ordinal)) return null;   // charged by an earlier attempt
            if (usage.Records + records > cap)
                return $"tenant '{tenant}' has had {usage.Records} records scored today; {records} more would pass the daily cap of {cap}";
            if (usage.Batches.Length >= MaxBatchesListed) return $"tenant '{tenant}' has submitted {usage.Batches.Length} batches today, the most one day holds";
            var next = JsonSerializer.SerializeToUtf8Bytes(new Usage(usage.Records + records, [.. usage.Batches, batchId]), JsonSerializerOptions.Web);
            try
            {
                await blobs.Results.PutAsync(name, new MemoryStream(next), etag is null ? BlobCondition.MustNotExist : BlobCondition.MustMatch(etag), cancellationToken);
                return null;
            }
            catch (BlobConditionFailedException) when (attempt < 50)
            {
                await Task.Delay(Random.Shared.Next(5, 30), cancellationToken);   // another batch of this tenant charged meanwhile
            }
        }
    }

    private sealed record Usage(long Records, string[] Batches);
}
