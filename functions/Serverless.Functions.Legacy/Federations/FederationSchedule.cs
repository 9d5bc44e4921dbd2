using Microsoft.Extensions.Logging;
using Serverless.Durable;
using Serverless.Functions.Federations.Services;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Timers;

namespace Serverless.Functions.Federations;

/// <summary>Scheduled retraining: every ten seconds, each federation whose own six-field cron is due gets a round.</summary>
public sealed class FederationSchedule(FederationScheduler scheduler)
{
    [Function("FederationSchedule")]
    public async Task Run([TimerTrigger("*/10 * * * * *")] TimerInfo timer, [DurableClient] DurableTaskClient client, ILogger logger, CancellationToken ct)
    {
        foreach (var (federation, outcome) in await scheduler.RunDueAsync(client, ct))
            logger.LogInformation("Scheduled round for {Federation}: {Outcome}", federation, outcome);
    }
}
