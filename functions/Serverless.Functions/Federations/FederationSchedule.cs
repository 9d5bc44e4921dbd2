using Microsoft.Extensions.Logging;
using Microsoft.DurableTask;
using Microsoft.DurableTask.Client;
using Serverless.Functions.Federations.Services;

namespace Serverless.Functions.Federations;

/// <summary>Scheduled retraining: every ten seconds, each federation whose own six-field cron is due gets a round.</summary>
public sealed class FederationSchedule(FederationScheduler scheduler, ILogger<FederationSchedule> logger)
{
    [Function("FederationSchedule")]
    public async Task Run([TimerTrigger("*/10 * * * * *")] TimerInfo timer, [DurableClient] DurableTaskClient client, CancellationToken ct)
    {
        foreach (var (federation, outcome) in await scheduler.RunDueAsync(client, ct))
            logger.LogInformation("Scheduled round for {Federation}: {Outcome}", federation, outcome);
    }
}
