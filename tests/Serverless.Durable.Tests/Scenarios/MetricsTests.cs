using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Serverless.Durable.Tests.Support;

namespace Serverless.Durable.Tests.Scenarios;

public sealed class MetricsTests
{
    [Fact]
    public async Task Instances_report_started_completed_failed_duration_and_replays()
    {
        var name = "Metered" + Guid.NewGuid().ToString("N")[..8]; // a tag no parallel test uses
        var seen = new ConcurrentDictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Serverless.Durable") l.EnableMeasurementEvents(instrument);
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            foreach (var tag in tags)
                if (tag.Key == "orchestration" && (string?)tag.Value == name)
                    seen.AddOrUpdate(instrument.Name, value, (_, v) => v + value);
        }
        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        var registry = new DurableTaskRegistry()
            .AddActivity<int, int>("Twice", x => x * 2)
            .AddOrchestrator<int, int>(name, async (ctx, x) =>
            {
                var y = await ctx.CallActivityAsync<int>("Twice", x);
                if (y > 100) throw new InvalidOperationException("too big");
                return await ctx.CallActivityAsync<int>("Twice", y);
            });
        await using var hub = TestHub.Create("sqlite");
        var host = await hub.StartAsync(registry);
        var ok = await host.Client.ScheduleNewOrchestrationInstanceAsync(name, 5);
        var bad = await host.Client.ScheduleNewOrchestrationInstanceAsync(name, 500);
        Assert.Equal(20, (await host.Client.WaitAsync(ok)).ReadOutputAs<int>());
        Assert.Equal(OrchestrationRuntimeStatus.Failed, (await host.Client.WaitAsync(bad)).RuntimeStatus);
        listener.RecordObservableInstruments();

        Assert.Equal(2, seen["durable.orchestrations.started"]);
        Assert.Equal(1, seen["durable.orchestrations.completed"]);
        Assert.Equal(1, seen["durable.orchestrations.failed"]);
        Assert.True(seen["durable.orchestration.duration"] > 0);
        Assert.True(seen["durable.episode.replayed_events"] > 0); // later episodes replayed earlier ones
        Assert.True(seen["durable.episodes"] >= 5);
    }
}
