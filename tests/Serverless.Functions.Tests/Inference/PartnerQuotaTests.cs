using Microsoft.Extensions.Options;
using Serverless.Functions.Inference;
using Serverless.Functions.Inference.Services;

namespace Serverless.Functions.Tests.Inference;

/// <summary>The per-partner daily cap on scored records: charged once per batch, per tenant, per UTC day.</summary>
public sealed class PartnerQuotaTests
{
    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task A_partner_is_refused_past_its_daily_cap_and_a_retried_batch_is_charged_once()
    {
        var clock = new Clock(new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.Zero));
        var blobs = new InferenceBlobs(new MemoryBlobStoreProvider());
        var quota = new PartnerQuota(blobs, Options.Create(new InferenceOptions { MaxRecordsPerPartnerPerDay = 10_000 }), clock);

        Assert.Null(await quota.ChargeAsync("insurer-a", "b1", 8192, CancellationToken.None));
        Assert.Null(await quota.ChargeAsync("insurer-a", "b1", 8192, CancellationToken.None));      // the same batch again: no second charge
        var over = await quota.ChargeAsync("insurer-a", "b2", 8192, CancellationToken.None);
        Assert.NotNull(over);
        Assert.Contains("daily cap of 10000", over);
        Assert.Null(await quota.ChargeAsync("insurer-a", "b3", 10_000 - 8192, CancellationToken.None));  // exactly up to the cap
        Assert.NotNull(await quota.ChargeAsync("insurer-a", "b4", 1, CancellationToken.None));
        Assert.Null(await quota.ChargeAsync("insurer-b", "b1", 8192, CancellationToken.None));      // another tenant has its own cap

        clock.Now = clock.Now.AddDays(1);
        Assert.Null(await quota.ChargeAsync("insurer-a", "b2", 8192, CancellationToken.None));      // a new day
    }

    [Fact]
    public async Task Concurrent_batches_of_one_partner_never_pass_the_cap_together()
    {
        var blobs = new InferenceBlobs(new MemoryBlobStoreProvider());
        var quota = new PartnerQuota(blobs, Options.Create(new InferenceOptions { MaxRecordsPerPartnerPerDay = 5 * 8192 }), TimeProvider.System);
        var results = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => Task.Run(() => quota.ChargeAsync("insurer-c", $"b{i}", 8192, CancellationToken.None))));
        Assert.Equal(5, results.Count(r => r is null));
    }
}
