using Microsoft.Extensions.DependencyInjection;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;
    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>Scheduled retraining: a due occurrence starts exactly one round, however many schedulers see it.</summary>
[Collection(FederationServerCollection.Name)]
public sealed class ScheduledRoundTests(CompletedRoundFixture fixture)
{
    [Fact]
    public async Task Two_schedulers_racing_for_one_occurrence_start_one_round_and_a_running_round_is_not_started_twice()
    {
        const string fed = "nightly";
        var host = fixture.Host;
        await host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed) with { Schedule = "0 0 * * * *" });
        for (var h = 0; h < 3; h++)
        {
            var id = $"nightly-{h}";
            using var agent = new TestAgent(host.Http, fed, id, TestAgent.IssueCertificate(host.DataDirectory, id), []);
            await agent.EnrollAsync();
        }
        var store = host.Store;
        var rounds = host.Services.GetRequiredService<RoundService>();
        var audit = host.Audit;
        var time = new ManualTime(new DateTimeOffset(2030, 1, 1, 0, 30, 0, TimeSpan.Zero));
        var a = new FederationScheduler(store, rounds, audit, time);
        var b = new FederationScheduler(store, rounds, audit, time);
        try
        {
            // First sight: the next occurrence is recorded, nothing starts.
            Assert.DoesNotContain(await a.RunDueAsync(host.Durable, default), r => r.Federation == fed);
            Assert.Equal(new DateTimeOffset(2030, 1, 1, 1, 0, 0, TimeSpan.Zero), (await store.TryGetStateAsync(fed))!.NextScheduledRun);

            // Not due yet.
            time.Now = new DateTimeOffset(2030, 1, 1, 0, 59, 59, TimeSpan.Zero);
            Assert.DoesNotContain(await b.RunDueAsync(host.Durable, default), r => r.Federation == fed);

            // Due: both race; exactly one claims the occurrence and starts round 1.
            time.Now = new DateTimeOffset(2030, 1, 1, 1, 0, 3, TimeSpan.Zero);
            var results = await Task.WhenAll(a.RunDueAsync(host.Durable, default), b.RunDueAsync(host.Durable, default), a.RunDueAsync(host.Durable, default));
            var mine = results.SelectMany(r => r).Where(r => r.Federation == fed).ToArray();
            var started = Assert.Single(mine);
            Assert.Equal($"started {RoundRoutes.InstanceId(fed, 1)}", started.Outcome);
            var state = (await store.TryGetStateAsync(fed))!;
            Assert.Equal(1, state.LastRound);
            Assert.Equal(new DateTimeOffset(2030, 1, 1, 2, 0, 0, TimeSpan.Zero), state.NextScheduledRun);
            Assert.NotNull(await host.Durable.GetInstanceAsync(RoundRoutes.InstanceId(fed, 1)));

            // The same moment again: nothing.
            Assert.DoesNotContain(await b.RunDueAsync(host.Durable, default), r => r.Federation == fed);

            // The next occurrence while round 1 still runs (its clients never answer): skipped, not a second round.
            time.Now = new DateTimeOffset(2030, 1, 1, 2, 0, 1, TimeSpan.Zero);
            var next = Assert.Single(await a.RunDueAsync(host.Durable, default), r => r.Federation == fed);
            Assert.StartsWith("skipped:", next.Outcome);
            Assert.Equal(1, (await store.TryGetStateAsync(fed))!.LastRound);
            Assert.Null(await host.Durable.GetInstanceAsync(RoundRoutes.InstanceId(fed, 2)));
        }
        finally
        {
            await host.Durable.TerminateInstanceAsync(RoundRoutes.InstanceId(fed, 1));
        }
    }
}
