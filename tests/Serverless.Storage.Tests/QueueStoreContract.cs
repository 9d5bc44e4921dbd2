using System.Text;
using Serverless.Storage;
using Serverless.Storage.Tests.Support;

namespace Serverless.Storage.Tests;

/// <summary>The behaviour every <see cref="IQueueStore"/> backend must show; one subclass per backend.</summary>
public abstract class QueueStoreContract
{
    protected abstract IQueueStore CreateStore();

    /// <summary>Visibility granularity: Azure counts in whole seconds.</summary>
    protected virtual TimeSpan ShortVisibility => TimeSpan.FromSeconds(1);

    protected static string NewQueueName() => "q-" + Guid.NewGuid().ToString("N")[..20];

    private static byte[] Bytes(string s) => Encoding.UTF8.GetBytes(s);

    [ContractFact]
    public async Task Put_get_delete_round_trip()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        var id = await store.PutAsync(queue, Bytes("hello"));
        var messages = await store.GetAsync(queue, 10, TimeSpan.FromSeconds(30));
        var m = Assert.Single(messages);
        Assert.Equal(id, m.Id);
        Assert.Equal("hello", Encoding.UTF8.GetString(m.Body.Span));
        Assert.Equal(1, m.DequeueCount);
        Assert.True(m.NextVisibleAt > DateTimeOffset.UtcNow.AddSeconds(20));
        Assert.True(await store.DeleteAsync(queue, m.Id, m.PopReceipt));
        Assert.Equal(0, await store.GetApproximateCountAsync(queue));
        Assert.Empty(await store.GetAsync(queue, 10, TimeSpan.FromSeconds(30)));
    }

    [ContractFact]
    public async Task Binary_bodies_round_trip()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        var body = Enumerable.Range(0, 4096).Select(i => (byte)i).ToArray();
        await store.PutAsync(queue, body);
        var m = Assert.Single(await store.GetAsync(queue, 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(body, m.Body.ToArray());
    }

    [ContractFact]
    public async Task A_received_message_is_hidden_until_its_visibility_timeout_then_returns_with_a_higher_dequeue_count()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        await store.PutAsync(queue, Bytes("m"));
        var first = Assert.Single(await store.GetAsync(queue, 1, ShortVisibility));
        Assert.Empty(await store.GetAsync(queue, 1, ShortVisibility));
        await Eventually.HoldsAsync(async () =>
        {
            var again = await store.GetAsync(queue, 1, TimeSpan.FromSeconds(30));
            if (again.Count == 0) return false;
            Assert.Equal(first.Id, again[0].Id);
            Assert.Equal(2, again[0].DequeueCount);
            Assert.NotEqual(first.PopReceipt, again[0].PopReceipt);
            // The first receipt went stale when the message was received again.
            Assert.False(await store.DeleteAsync(queue, first.Id, first.PopReceipt));
            Assert.True(await store.DeleteAsync(queue, again[0].Id, again[0].PopReceipt));
            return true;
        }, "message to reappear", timeoutSeconds: 15);
    }

    [ContractFact]
    public async Task Update_visibility_hides_or_reveals_and_renews_the_receipt()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        await store.PutAsync(queue, Bytes("m"));
        var m = Assert.Single(await store.GetAsync(queue, 1, TimeSpan.FromSeconds(30)));
        var receipt = await store.UpdateVisibilityAsync(queue, m.Id, m.PopReceipt, TimeSpan.Zero);
        Assert.NotNull(receipt);
        Assert.Null(await store.UpdateVisibilityAsync(queue, m.Id, m.PopReceipt, TimeSpan.Zero)); // the old receipt is stale
        var again = Assert.Single(await store.GetAsync(queue, 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(m.Id, again.Id);
        Assert.False(await store.DeleteAsync(queue, m.Id, receipt!)); // received again: that receipt is stale too
        Assert.True(await store.DeleteAsync(queue, again.Id, again.PopReceipt));
    }

    [ContractFact]
    public async Task Get_returns_at_most_max_messages_in_insertion_order_and_no_message_twice()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        for (var i = 0; i < 7; i++) await store.PutAsync(queue, Bytes($"m{i}"));
        Assert.Equal(7, await store.GetApproximateCountAsync(queue));
        var first = await store.GetAsync(queue, 5, TimeSpan.FromSeconds(30));
        var second = await store.GetAsync(queue, 5, TimeSpan.FromSeconds(30));
        Assert.Equal(5, first.Count);
        Assert.Equal(2, second.Count);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"m{i}"), first.Select(m => Encoding.UTF8.GetString(m.Body.Span)));
        Assert.Empty(first.Select(m => m.Id).Intersect(second.Select(m => m.Id)));
        Assert.Equal(7, await store.GetApproximateCountAsync(queue)); // hidden messages still count
    }

    [ContractFact]
    public async Task Initial_visibility_delay_hides_a_new_message()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        await store.PutAsync(queue, Bytes("later"), TimeSpan.FromSeconds(60));
        Assert.Empty(await store.GetAsync(queue, 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(1, await store.GetApproximateCountAsync(queue));
    }

    [ContractFact]
    public async Task Concurrent_receivers_never_get_the_same_message()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        for (var i = 0; i < 40; i++) await store.PutAsync(queue, Bytes($"m{i}"));
        var receivers = Enumerable.Range(0, 6).Select(_ => Task.Run(async () =>
        {
            var got = new List<string>();
            while (true)
            {
                var batch = await store.GetAsync(queue, 4, TimeSpan.FromSeconds(60));
                if (batch.Count == 0) return got;
                got.AddRange(batch.Select(m => m.Id));
            }
        })).ToArray();
        var all = (await Task.WhenAll(receivers)).SelectMany(x => x).ToList();
        Assert.Equal(40, all.Count);
        Assert.Equal(40, all.Distinct().Count());
    }

    [ContractFact]
    public async Task Limits_and_names_are_enforced()
    {
        var store = CreateStore();
        var queue = NewQueueName();
        await store.CreateQueueAsync(queue);
        await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync(queue, new byte[IQueueStore.MaxMessageBytes + 1]));
        await Assert.ThrowsAsync<ArgumentException>(() => store.CreateQueueAsync("Bad_Name"));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.GetAsync(queue, 33, TimeSpan.FromSeconds(1)));
        Assert.Equal(0, await store.GetApproximateCountAsync(NewQueueName())); // a queue that does not exist is empty
    }
}
