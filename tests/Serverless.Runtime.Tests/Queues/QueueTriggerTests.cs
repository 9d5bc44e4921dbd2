using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Queues;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Queues;

public sealed class QueueTriggerTests
{
    public sealed class Attempts
    {
        public ConcurrentDictionary<string, int> ByMessage { get; } = new();
        public ConcurrentQueue<(string Body, int DequeueCount, string Id)> Calls { get; } = new();
        public int Active;
        public int MaxActive;
    }

    public sealed record Job(string Name, int Size);

    public sealed class QueueFunctions(Attempts attempts)
    {
        [Function("AlwaysFails")]
        public void AlwaysFails([QueueTrigger("always-fails")] string body, int dequeueCount, string id)
        {
            attempts.Calls.Enqueue((body, dequeueCount, id));
            throw new InvalidOperationException($"boom on attempt {dequeueCount}");
        }

        [Function("FailsTwice")]
        public void FailsTwice([QueueTrigger("fails-twice")] QueueMessage message)
        {
            var n = attempts.ByMessage.AddOrUpdate(message.Id, 1, (_, c) => c + 1);
            if (n <= 2) throw new TimeoutException("transient");
            attempts.Calls.Enqueue((Encoding.UTF8.GetString(message.Body.Span), message.DequeueCount, message.Id));
        }

        [Function("Jobs")]
        public async Task Jobs([QueueTrigger("jobs")] Job job, FunctionContext context)
        {
            var active = Interlocked.Increment(ref attempts.Active);
            int seen;
            while ((seen = Volatile.Read(ref attempts.MaxActive)) < active && Interlocked.CompareExchange(ref attempts.MaxActive, active, seen) != seen) { }
            await Task.Delay(50, context.CancellationToken);
            attempts.Calls.Enqueue(($"{job.Name}:{job.Size}", (int)context.BindingData["DequeueCount"]!, (string)context.BindingData["Id"]!));
            Interlocked.Decrement(ref attempts.Active);
        }
    }

    private static async Task<(TestHost Host, Attempts Attempts, IQueueStore Queues)> StartAsync()
    {
        var attempts = new Attempts();
        var host = await TestHost.StartAsync([typeof(QueueFunctions)], configure: b => b.Services.AddSingleton(attempts));
        return (host, attempts, host.Services.GetRequiredService<IQueueStore>());
    }

    [Fact]
    public async Task A_message_failing_maxDequeueCount_times_moves_to_poison_with_the_last_error()
    {
        var (host, attempts, queues) = await StartAsync();
        await using var _ = host;
        var id = await queues.PutAsync("always-fails", Encoding.UTF8.GetBytes("payload-1"));

        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("always-fails-poison") == 1, "the poison message");
        Assert.Equal(0, await queues.GetApproximateCountAsync("always-fails"));
        Assert.Equal([1, 2, 3], attempts.Calls.Select(c => c.DequeueCount).Order());
        Assert.All(attempts.Calls, c => Assert.Equal(id, c.Id));

        var poison = Assert.Single(await queues.GetAsync("always-fails-poison", 32, TimeSpan.FromMinutes(1)));
        var envelope = PoisonMessage.Parse(poison.Body.Span);
        Assert.Equal("always-fails", envelope.Queue);
        Assert.Equal(id, envelope.MessageId);
        Assert.Equal(3, envelope.DequeueCount);
        Assert.Equal("payload-1", Encoding.UTF8.GetString(envelope.Body));
        Assert.Equal("System.InvalidOperationException: boom on attempt 3", envelope.LastError);
        await Task.Delay(300);
        Assert.Equal(3, attempts.Calls.Count); // nothing runs after poisoning
    }

    [Fact]
    public async Task A_transient_failure_is_retried_and_then_deleted()
    {
        var (host, attempts, queues) = await StartAsync();
        await using var _ = host;
        await queues.PutAsync("fails-twice", Encoding.UTF8.GetBytes("eventually"));
        await Eventually.HoldsAsync(() => attempts.Calls.Count == 1, "the successful attempt");
        var call = attempts.Calls.Single();
        Assert.Equal(("eventually", 3), (call.Body, call.DequeueCount));
        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("fails-twice") == 0, "the message to be deleted");
        Assert.Equal(0, await queues.GetApproximateCountAsync("fails-twice-poison"));
    }

    [Fact]
    public async Task Json_messages_bind_and_run_in_parallel_up_to_the_batch_size()
    {
        var (host, attempts, queues) = await StartAsync();
        await using var _ = host;
        for (var i = 0; i < 12; i++) await queues.PutAsync("jobs", Encoding.UTF8.GetBytes($$"""{"name":"job{{i}}","size":{{i}}}"""));
        await Eventually.HoldsAsync(() => attempts.Calls.Count == 12, "all jobs");
        Assert.Equal(Enumerable.Range(0, 12).Select(i => $"job{i}:{i}").Order(), attempts.Calls.Select(c => c.Body).Order());
        Assert.All(attempts.Calls, c => Assert.Equal(1, c.DequeueCount));
        Assert.InRange(attempts.MaxActive, 1, 4 + 2); // batchSize 4 + newBatchThreshold 2
        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("jobs") == 0, "all deleted");
    }

    [Fact]
    public async Task A_message_that_is_not_valid_json_for_the_parameter_ends_in_poison()
    {
        var (host, attempts, queues) = await StartAsync();
        await using var _ = host;
        await queues.PutAsync("jobs", Encoding.UTF8.GetBytes("not json"));
        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("jobs-poison") == 1, "the poison message");
        var envelope = PoisonMessage.Parse((await queues.GetAsync("jobs-poison", 1, TimeSpan.FromMinutes(1)))[0].Body.Span);
        Assert.StartsWith("Serverless.Runtime.Functions.FunctionBindingException: Queue message", envelope.LastError);
        Assert.Empty(attempts.Calls);
    }

    [Fact]
    public async Task A_token_carried_in_a_poisoned_message_is_redacted_and_the_rest_kept()
    {
        var (host, _, queues) = await StartAsync();
        await using var _ = host;
        const string secret = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0.c2lnbmF0dXJl";
        await queues.PutAsync("always-fails", Encoding.UTF8.GetBytes($$$"""{"batchId":"b-1","token":"{{{secret}}}","nested":{"Authorization":"Bearer {{{secret}}}","keep":1}}"""));
        await Eventually.HoldsAsync(async () => await queues.GetApproximateCountAsync("always-fails-poison") == 1, "the poison message");
        var raw = Assert.Single(await queues.GetAsync("always-fails-poison", 32, TimeSpan.FromMinutes(1)));
        Assert.DoesNotContain(secret, Encoding.UTF8.GetString(raw.Body.Span));
        var body = System.Text.Json.JsonDocument.Parse(PoisonMessage.Parse(raw.Body.Span).Body).RootElement;
        Assert.DoesNotContain(secret, body.GetRawText());
        Assert.Equal(PoisonRedaction.Redacted, body.GetProperty("token").GetString());
        Assert.Equal(PoisonRedaction.Redacted, body.GetProperty("nested").GetProperty("Authorization").GetString());
        Assert.Equal("b-1", body.GetProperty("batchId").GetString());
        Assert.Equal(1, body.GetProperty("nested").GetProperty("keep").GetInt32());
    }

    [Theory]
    [InlineData("payload-1")]
    [InlineData("[{\"name\":\"x\"}]")]
    [InlineData("{\"token\":null,\"a\":2}")]
    [InlineData("{not json")]
    public void Bodies_without_a_credential_member_are_copied_unchanged(string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        Assert.Equal(bytes, PoisonRedaction.Redact(bytes));
    }
}
