using System.Buffers;
using Microsoft.AspNetCore.Http;
using Serverless.Host.Queues;

namespace Serverless.Host.Http;

/// <summary>
/// One HTTP-trigger invocation on a worker with the ASP.NET Core integration. Two things go out at once, as
/// the Functions host sends them: the caller's request, forwarded to the worker's Kestrel
/// (<see cref="WorkerHttpProxy"/>), and an InvocationRequest whose trigger input is an empty RpcHttp (the
/// request itself travels over HTTP; route values, Query and Headers are still trigger metadata). The
/// worker pairs them by invocation id, runs the function, and answers the HTTP response itself; its
/// "$return" and http output bindings are spent there, so the host takes only the other outputs (queues)
/// from the InvocationResponse.
/// <para>
/// The host commits to the worker's response once its body starts to flow or the invocation has ended.
/// A function that failed before anything of its response was sent is a 500, as over RpcHttp (the worker
/// alone would send an empty 200); a response that streams while the function runs is passed on as it comes.
/// </para>
/// </summary>
internal sealed class ProxiedHttpInvoker(WorkerChannel channel, WorkerHttpProxy proxy, IQueueStore? queues, ILogger log)
{
    private const int BufferSize = 64 * 1024;

    private enum Outcome
    {
        Succeeded,
        Failed,
        WorkerGone,
        Aborted,
    }

    public async Task InvokeAsync(HttpContext context, FunctionDescriptor function, InvocationRequest invocation)
    {
        string invocationId = invocation.InvocationId;
        CancellationToken aborted = context.RequestAborted;
        using var forwarding = CancellationTokenSource.CreateLinkedTokenSource(aborted);

        // The request first, then the invocation: the worker's Kestrel waits for the invocation to pair with.
        Task<HttpResponseMessage> forwarded = proxy.SendAsync(context, invocationId, forwarding.Token);
        Task<Outcome> invoked = RunInvocationAsync(function, invocation, aborted);

        if (await Task.WhenAny(forwarded, invoked) == invoked && invoked.Result != Outcome.Succeeded)
        {
            await forwarding.CancelAsync();
            Abandon(forwarded);
            await FinishWithoutResponseAsync(context, invocationId, invoked.Result);
            return;
        }

        HttpResponseMessage response;
        try
        {
            response = await forwarded;
        }
        catch (Exception e) when (HostProblems.IsTooLarge(e))
        {
            // The caller's body passed the limit while it was being forwarded: the function must not
            // go on with half a body.
            channel.Post(Cancel(invocationId));
            Abandon(invoked);
            await HostProblems.TooLargeAsync(context, HostProblems.Limit(context) ?? 0);
            return;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            Outcome outcome = await invoked;
            if (outcome == Outcome.Succeeded && !aborted.IsCancellationRequested)
            {
                // The function ran but its answer never came over HTTP.
                Logs.WorkerHttpFailed(log, function.Name, invocationId, e.GetType().Name);
                context.Response.StatusCode = StatusCodes.Status502BadGateway;
                return;
            }
            await FinishWithoutResponseAsync(context, invocationId, outcome);
            return;
        }

        using (response)
        {
            await RelayAsync(context, response, invoked, invocationId);
        }
    }

    private async Task RelayAsync(HttpContext context, HttpResponseMessage response, Task<Outcome> invoked, string invocationId)
    {
        CancellationToken aborted = context.RequestAborted;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            Stream body;
            int read;
            try
            {
                body = await response.Content.ReadAsStreamAsync(aborted);
                Task<int> first = body.ReadAsync(buffer, aborted).AsTask();
                if (await Task.WhenAny(first, invoked) == invoked && invoked.Result != Outcome.Succeeded && !first.IsCompleted)
                {
                    // Failed before a byte of the response: the caller gets the failure, not half an answer.
                    // The pending read ends (with an error) once the response is disposed; the buffer goes
                    // back to the pool only after that.
                    response.Dispose();
                    try
                    {
                        await first;
                    }
                    catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException or ObjectDisposedException)
                    {
                    }
                    await FinishWithoutResponseAsync(context, invocationId, invoked.Result);
                    return;
                }
                read = await first;
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
            {
                await FinishWithoutResponseAsync(context, invocationId, aborted.IsCancellationRequested ? Outcome.Aborted : await invoked);
                return;
            }

            if ((read == 0 || invoked.IsCompleted) && await invoked is var outcome and not Outcome.Succeeded)
            {
                await FinishWithoutResponseAsync(context, invocationId, outcome);
                return;
            }

            WorkerHttpProxy.CopyResponseHead(response, context.Response);
            try
            {
                while (read > 0)
                {
                    await context.Response.Body.WriteAsync(buffer.AsMemory(0, read), aborted);
                    read = await body.ReadAsync(buffer, aborted);
                }
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
            {
                // Cut mid-body (caller gone, or the worker's connection broke): the caller sees a truncated
                // response, as from any proxy; the invocation is told to stop if the caller left.
                if (aborted.IsCancellationRequested)
                {
                    channel.Post(Cancel(invocationId));
                }
                context.Abort();
                return;
            }
            await invoked;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Sends the invocation and waits for its end; on success the non-HTTP outputs are written.</summary>
    private async Task<Outcome> RunInvocationAsync(FunctionDescriptor function, InvocationRequest invocation, CancellationToken aborted)
    {
        StreamingMessage reply;
        try
        {
            reply = await channel.SendAsync(
                CorrelationKeys.Invocation(invocation.InvocationId),
                new StreamingMessage { RequestId = invocation.InvocationId, InvocationRequest = invocation },
                aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return Outcome.Aborted;
        }
        catch (WorkerUnavailableException)
        {
            return Outcome.WorkerGone;
        }

        InvocationResponse response = reply.InvocationResponse;
        if (response.Result?.Status != StatusResult.Types.Status.Success)
        {
            // Only the exception's type is logged: its message may carry data from the request.
            Logs.InvocationFailed(log, function.Name, invocation.InvocationId, response.Result?.Exception?.Type is { Length: > 0 } t ? t : "failure");
            return Outcome.Failed;
        }
        await QueueOutputs.WriteAsync(function, response, queues, CancellationToken.None);
        return Outcome.Succeeded;
    }

    private Task FinishWithoutResponseAsync(HttpContext context, string invocationId, Outcome outcome)
    {
        if (outcome == Outcome.Aborted)
        {
            channel.Post(Cancel(invocationId));
            return Task.CompletedTask;
        }
        if (outcome == Outcome.WorkerGone)
        {
            return HostProblems.WorkerUnavailableAsync(context);
        }
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = StatusCodes.Status500InternalServerError;
        }
        return Task.CompletedTask;
    }

    private static StreamingMessage Cancel(string invocationId) =>
        new() { InvocationCancel = new InvocationCancel { InvocationId = invocationId } };

    /// <summary>Lets a task the caller no longer waits for end on its own: its fault is observed, a late response disposed.</summary>
    private static void Abandon<T>(Task<T> task) =>
        _ = task.ContinueWith(static t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                (t.Result as IDisposable)?.Dispose();
            }
            else
            {
                _ = t.Exception;
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
}
