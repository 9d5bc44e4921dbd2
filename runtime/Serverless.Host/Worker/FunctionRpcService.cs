using Grpc.Core;
using GrpcException = Grpc.Core.RpcException;

namespace Serverless.Host.Worker;

/// <summary>
/// The gRPC service the worker connects to. The first message must be StartStream with the worker id
/// the host passed on the worker's command line; then one writer task drains that worker's queue while
/// this call reads the worker's messages until the stream ends.
/// </summary>
internal sealed class FunctionRpcService(WorkerChannel channel) : FunctionRpc.FunctionRpcBase
{
    public override async Task EventStream(
        IAsyncStreamReader<StreamingMessage> requestStream,
        IServerStreamWriter<StreamingMessage> responseStream,
        ServerCallContext context)
    {
        CancellationToken cancel = context.CancellationToken;
        WorkerChannel.Generation? generation = null;
        if (!await requestStream.MoveNext(cancel)
            || requestStream.Current.ContentCase != StreamingMessage.ContentOneofCase.StartStream
            || (generation = channel.Accept(requestStream.Current.StartStream.WorkerId)) is null)
        {
            throw new GrpcException(new Status(StatusCode.PermissionDenied, "The stream must begin with StartStream carrying this host's worker id."));
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        Task writer = WriteAllAsync(generation, responseStream, stop.Token);
        Exception reason = new WorkerUnavailableException("The worker closed its stream.");
        try
        {
            while (await requestStream.MoveNext(cancel))
            {
                channel.Receive(generation, requestStream.Current);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or GrpcException)
        {
            reason = new WorkerUnavailableException("The worker's stream failed.", e);
        }
        finally
        {
            channel.Close(generation, reason);
            await stop.CancelAsync();
            try
            {
                await writer;
            }
            catch (OperationCanceledException)
            {
            }
        }
    }

    private static async Task WriteAllAsync(WorkerChannel.Generation generation, IServerStreamWriter<StreamingMessage> stream, CancellationToken cancel)
    {
        await foreach (StreamingMessage message in generation.Outgoing.Reader.ReadAllAsync(cancel))
        {
            await stream.WriteAsync(message, cancel);
        }
    }
}
