using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Queues;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Timers;

namespace Serverless.Runtime.Hosting;

/// <summary>Starts a listener per timer and queue function; on stop, waits for in-flight invocations.</summary>
internal sealed class FunctionListeners(IFunctionCatalog catalog, IFunctionExecutor executor, IBlobStoreProvider blobs, IQueueStore queues,
    IOptions<QueuesOptions> queueOptions, TimeProvider time, IConfiguration configuration, ILoggerFactory loggers) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _listeners = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var function in catalog.Functions)
        {
            var logger = loggers.CreateLogger("Function." + function.Name);
            Func<CancellationToken, Task>? run = function.Trigger switch
            {
                TimerTriggerAttribute => new TimerListener(function, executor, blobs, time, configuration, logger).RunAsync,
                QueueTriggerAttribute q => new QueueListener(function, FunctionCatalog.ResolveSetting(q.QueueName, configuration), queues, executor,
                    queueOptions.Value, time, logger).RunAsync,
                _ => null,
            };
            if (run is null) continue;
            _listeners.Add(Task.Run(async () =>
            {
                try
                {
                    await run(_stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
                {
                }
                catch (Exception e)
                {
                    logger.LogCritical(e, "The listener of function {Function} stopped", function.Name);
                }
            }, CancellationToken.None));
        }
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_listeners).WaitAsync(cancellationToken).ConfigureAwait(false);
    }
}
