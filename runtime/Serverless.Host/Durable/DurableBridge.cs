using System.Diagnostics;
using DurableTask.Core;
using DurableTask.Core.History;
using DurableTask.Core.Middleware;
using Microsoft.DurableTask.Testing.Sidecar.Grpc;
using P = Microsoft.DurableTask.Protobuf;

namespace Serverless.Host.Durable;

/// <summary>
/// DurableTask.Core's TaskHubWorker with the out-of-process path Durable Functions uses: the engine fetches,
/// locks and checkpoints work items; two dispatcher middlewares hand the work to the isolated worker instead
/// of running in-process code. An orchestration work item becomes an invocation of the
/// <c>orchestrationTrigger</c> function whose input is a base64 OrchestratorRequest (instance id, past and
/// new events as protobuf); its return value, a base64 OrchestratorResponse, carries the actions the engine
/// then commits. An activity is an ordinary invocation of the <c>activityTrigger</c> function, its input the
/// activity's JSON.
/// </summary>
internal sealed class DurableBridge : IAsyncDisposable
{
    private readonly WorkerChannel _channel;
    private readonly Dictionary<string, FunctionDescriptor> _orchestrators;
    private readonly Dictionary<string, FunctionDescriptor> _activities;
    private readonly TaskHubWorker _worker;
    private readonly ILogger _log;

    private DurableBridge(DurableBackend backend, WorkerChannel channel, IEnumerable<FunctionDescriptor> functions, ILoggerFactory loggers)
    {
        _channel = channel;
        _log = loggers.CreateLogger("Serverless.Host.Durable");
        _orchestrators = ByTrigger(functions, OrchestrationTrigger);
        _activities = ByTrigger(functions, ActivityTrigger);
        // The managers stay empty: every orchestration and activity is answered by a middleware below, which
        // never calls the in-process executor behind it.
        _worker = new TaskHubWorker(backend.Service, new NoLocalObjects<TaskOrchestration>(), new NoLocalObjects<TaskActivity>(), loggers)
        {
            ErrorPropagationMode = ErrorPropagationMode.UseFailureDetails,
        };
        _worker.AddOrchestrationDispatcherMiddleware(RunOrchestratorAsync);
        _worker.AddActivityDispatcherMiddleware(RunActivityAsync);
    }

    internal const string OrchestrationTrigger = "orchestrationTrigger";
    internal const string ActivityTrigger = "activityTrigger";

    /// <summary>Whether the app has any durable function (then the host starts the engine).</summary>
    public static bool IsDurable(FunctionDescriptor function) =>
        function.Bindings.Any(b => b.Type.Equals(OrchestrationTrigger, StringComparison.OrdinalIgnoreCase)
            || b.Type.Equals(ActivityTrigger, StringComparison.OrdinalIgnoreCase)
            || b.Type.Equals(DurableClientBinding.BindingType, StringComparison.OrdinalIgnoreCase));

    public static async Task<DurableBridge> StartAsync(DurableBackend backend, WorkerChannel channel, IEnumerable<FunctionDescriptor> functions, ILoggerFactory loggers)
    {
        var bridge = new DurableBridge(backend, channel, functions, loggers);
        await bridge._worker.StartAsync();
        return bridge;
    }

    private async Task RunOrchestratorAsync(DispatchMiddlewareContext context, Func<Task> next)
    {
        OrchestrationRuntimeState? state = context.GetProperty<OrchestrationRuntimeState>();
        OrchestrationInstance? instance = context.GetProperty<OrchestrationInstance>();
        if (state is null || instance is null || state.ExecutionStartedEvent is null)
        {
            context.SetProperty(OrchestratorExecutionResult.ForFailure("The orchestration's runtime state was incomplete.", details: null));
            return;
        }
        if (!_orchestrators.TryGetValue(state.Name, out FunctionDescriptor? function))
        {
            // Not retryable: the app has no such orchestrator (the Functions host fails it the same way).
            context.SetProperty(OrchestratorExecutionResult.ForFailure(
                $"The function '{state.Name}' doesn't exist, is disabled, or is not an orchestrator function.", details: null));
            return;
        }

        var request = new P.OrchestratorRequest { InstanceId = instance.InstanceId };
        foreach (HistoryEvent past in state.PastEvents)
        {
            request.PastEvents.Add(ProtobufUtils.ToHistoryEventProto(past));
        }
        foreach (HistoryEvent added in state.NewEvents)
        {
            request.NewEvents.Add(ProtobufUtils.ToHistoryEventProto(added));
        }

        InvocationResponse response = await InvokeAsync(function, new TypedData { String = ProtobufUtils.Base64Encode(request) });
        if (response.Result?.Status != StatusResult.Types.Status.Success)
        {
            // GrpcOrchestrationRunner turns an orchestrator's own exception into a failed completion action, so a
            // failed invocation is the function pipeline's failure (a middleware, a binding); it fails the instance.
            context.SetProperty(OrchestratorExecutionResult.ForFailure(
                $"Function '{function.Name}' failed with an unhandled exception.", FailureText(response.Result)));
            return;
        }
        if (response.ReturnValue?.DataCase != TypedData.DataOneofCase.String || response.ReturnValue.String.Length == 0)
        {
            throw new InvalidOperationException($"The orchestrator function '{function.Name}' returned no OrchestratorResponse.");
        }
        P.OrchestratorResponse actions = P.OrchestratorResponse.Parser.ParseFrom(Convert.FromBase64String(response.ReturnValue.String));
        context.SetProperty(new OrchestratorExecutionResult
        {
            Actions = actions.Actions.Select(ProtobufUtils.ToOrchestratorAction).ToList(),
            CustomStatus = actions.CustomStatus,
        });
    }

    private async Task RunActivityAsync(DispatchMiddlewareContext context, Func<Task> next)
    {
        TaskScheduledEvent? scheduled = context.GetProperty<TaskScheduledEvent>();
        if (scheduled is null)
        {
            throw new InvalidOperationException("The activity work item carries no TaskScheduledEvent.");
        }
        HistoryEvent result;
        if (scheduled.Name is null || !_activities.TryGetValue(scheduled.Name, out FunctionDescriptor? function))
        {
            result = new TaskFailedEvent(-1, scheduled.EventId, $"The activity function '{scheduled.Name}' doesn't exist.", details: null,
                new FailureDetails("FunctionNotFound", $"The activity function '{scheduled.Name}' doesn't exist.", null, null, isNonRetriable: true));
        }
        else
        {
            // The activity's input is the JSON the orchestrator serialized; the worker's converter deserializes it.
            string? json = UnwrapActivityInput(scheduled.Input);
            TypedData input = json is null ? new TypedData() : new TypedData { String = json };
            InvocationResponse response = await InvokeAsync(function, input);
            if (response.Result?.Status == StatusResult.Types.Status.Success)
            {
                result = new TaskCompletedEvent(-1, scheduled.EventId, ToJson(response.ReturnValue));
            }
            else
            {
                RpcException? e = response.Result?.Exception;
                string type = e?.Type is { Length: > 0 } t ? t : "Exception";
                string message = e?.Message ?? "The activity failed.";
                result = new TaskFailedEvent(-1, scheduled.EventId, message, details: null,
                    new FailureDetails(type, message, e?.StackTrace, null, isNonRetriable: false));
            }
        }
        context.SetProperty(new ActivityExecutionResult { ResponseEvent = result });
    }

    /// <summary>
    /// Invokes a function with its trigger input. A worker that is gone throws, so DurableTask.Core abandons
    /// the work item and it runs again later: nothing acknowledged is lost.
    /// </summary>
    private async Task<InvocationResponse> InvokeAsync(FunctionDescriptor function, TypedData triggerInput)
    {
        string invocationId = Guid.NewGuid().ToString();
        var invocation = new InvocationRequest
        {
            InvocationId = invocationId,
            FunctionId = function.Id,
            TraceContext = new RpcTraceContext
            {
                TraceParent = Activity.Current?.Id ?? string.Empty,
                TraceState = Activity.Current?.TraceStateString ?? string.Empty,
            },
        };
        invocation.InputData.Add(new ParameterBinding { Name = function.Trigger!.Name, Data = triggerInput });
        function.AddBindingInputs(invocation);
        StreamingMessage reply = await _channel.SendAsync(
            CorrelationKeys.Invocation(invocationId),
            new StreamingMessage { RequestId = invocationId, InvocationRequest = invocation },
            CancellationToken.None);
        return reply.InvocationResponse;
    }

    /// <summary>
    /// The isolated worker schedules an activity with its input wrapped in a one-element JSON array (the shape
    /// DurableTask.Core's own context used for parameter lists); the Functions host unwraps it before the
    /// activity trigger sees it, and so does this host. Anything else passes unchanged.
    /// </summary>
    internal static string? UnwrapActivityInput(string? input)
    {
        if (input is null || input.Length == 0 || input[0] != '[')
        {
            return input;
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(input);
            JsonElement root = document.RootElement;
            return root.ValueKind == JsonValueKind.Array && root.GetArrayLength() == 1 ? root[0].GetRawText() : input;
        }
        catch (JsonException)
        {
            return input;
        }
    }

    /// <summary>
    /// An activity's result as the JSON the orchestrator deserializes: the worker sends a string return value
    /// as text and an object as JSON, so text is quoted here (as the Functions host serializes it).
    /// </summary>
    internal static string? ToJson(TypedData? value) => value?.DataCase switch
    {
        TypedData.DataOneofCase.Json => value.Json,
        TypedData.DataOneofCase.String => JsonSerializer.Serialize(value.String, DurableJson.Default.String),
        TypedData.DataOneofCase.Int => value.Int.ToString(System.Globalization.CultureInfo.InvariantCulture),
        TypedData.DataOneofCase.Double => value.Double.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        TypedData.DataOneofCase.Bytes => JsonSerializer.Serialize(value.Bytes.ToBase64(), DurableJson.Default.String),
        _ => null,
    };

    private static string? FailureText(StatusResult? result) =>
        result?.Exception is { } e ? $"{e.Type}: {e.Message}" : null;

    private static Dictionary<string, FunctionDescriptor> ByTrigger(IEnumerable<FunctionDescriptor> functions, string trigger) =>
        functions.Where(f => f.Trigger?.Type.Equals(trigger, StringComparison.OrdinalIgnoreCase) == true)
            .ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _worker.StopAsync(isForced: true);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            DurableLogs.StopFailed(_log, e.GetType().Name);
        }
        _worker.Dispose();
    }
}

/// <summary>No in-process orchestrations or activities: the worker process runs them all.</summary>
internal sealed class NoLocalObjects<T> : INameVersionObjectManager<T>
    where T : class
{
    public void Add(ObjectCreator<T> creator) =>
        throw new NotSupportedException("The local host runs orchestrations and activities in the worker process only.");

    public T? GetObject(string name, string? version) => null;
}
