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
        // The app's own timer-triggered scheduler shares the store and runs on the real clock, so the test's clock
        // starts at the real now and the schedule's next occurrence is half a day away: the app's scheduler records the
        // same occurrence the test's schedulers see, and never reaches it while the test runs.
        var now = DateTimeOffset.UtcNow;
        var hour = (now.Hour + 12) % 24;
        var due = new DateTimeOffset(now.Year, now.Month, now.Day, hour, 0, 0, TimeSpan.Zero);
        if (due <= now) due = due.AddDays(1);
        await host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed) with { Schedule = $"0 0 {hour} * * *" });
        for (var h = 0; h < 3; h++)
        {
            var id = $"nightly-{h}";
            using var agent = new TestAgent(host.Http, fed, id, TestAgent.IssueCertificate(host.DataDirectory, id), []);
            await agent.EnrollAsync();
        }
        var store = host.Store;
        var rounds = host.Services.GetRequiredService<RoundService>();
        var audit = host.Audit;
        var time = new ManualTime(now);
        var a = new FederationScheduler(store, rounds, audit, time);
        var b = new FederationScheduler(store, rounds, audit, time);
        try
        {
            // First sight: the next occurrence is recorded, nothing starts.
            Assert.DoesNotContain(await a.RunDueAsync(host.Durable, default), r => r.Federation == fed);
            Assert.Equal(due, (await store.TryGetStateAsync(fed))!.NextScheduledRun);

            // Not due yet.
            time.Now = due.AddSeconds(-1);
            Assert.DoesNotContain(await b.RunDueAsync(host.Durable, default), r => r.Federation == fed);

            // Due: both race; exactly one claims the occurrence and starts round 1.
            time.Now = due.AddSeconds(3);
            var results = await Task.WhenAll(a.RunDueAsync(host.Durable, default), b.RunDueAsync(host.Durable, default), a.RunDueAsync(host.Durable, default));
            var mine = results.SelectMany(r => r).Where(r => r.Federation == fed).ToArray();
            var started = Assert.Single(mine);
            Assert.Equal($"started {RoundRoutes.InstanceId(fed, 1)}", started.Outcome);
            var state = (await store.TryGetStateAsync(fed))!;
            Assert.Equal(1, state.LastRound);
            Assert.Equal(due.AddDays(1), state.NextScheduledRun);
            Assert.NotNull(await host.Durable.GetInstanceAsync(RoundRoutes.InstanceId(fed, 1)));

            // The same moment again: nothing.
            Assert.DoesNotContain(await b.RunDueAsync(host.Durable, default), r => r.Federation == fed);

            // The next occurrence while round 1 still runs (its clients never answer): skipped, not a second round.
            time.Now = due.AddDays(1).AddSeconds(1);
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
