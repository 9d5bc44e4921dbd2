using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;

namespace Serverless.Storage.Azure;

/// <summary>
/// Queues of one storage account, through Azure.Storage.Queues. Bodies travel base64-encoded (the client's
/// message encoding), so any bytes round-trip. Azure counts visibility in whole seconds: timeouts are
/// rounded up, never down, so a message is never visible before its time.
/// </summary>
internal sealed class AzureQueueStore(QueueServiceClient service) : IQueueStore
{
    private static readonly TimeSpan MaxVisibility = TimeSpan.FromDays(7);

    // -1: messages never expire, as in the embedded store (the service default is 7 days).
    private static readonly TimeSpan NeverExpire = TimeSpan.FromSeconds(-1);

    private QueueClient Queue(string queue)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        return service.GetQueueClient(queue);
    }

    public async Task CreateQueueAsync(string queue, CancellationToken cancellationToken = default) =>
        await Queue(queue).CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);

    public async Task<string> PutAsync(string queue, ReadOnlyMemory<byte> body, TimeSpan initialVisibilityDelay = default, CancellationToken cancellationToken = default)
    {
        var client = Queue(queue);
        if (body.Length > IQueueStore.MaxMessageBytes)
            throw new ArgumentException($"A message body is at most {IQueueStore.MaxMessageBytes} bytes; got {body.Length}.", nameof(body));
        CheckVisibility(initialVisibilityDelay, nameof(initialVisibilityDelay));
        var data = BinaryData.FromBytes(body);
        var delay = WholeSeconds(initialVisibilityDelay, minimum: 0);
        try
        {
            return (await client.SendMessageAsync(data, delay, NeverExpire, cancellationToken).ConfigureAwait(false)).Value.MessageId;
        }
        catch (RequestFailedException e) when (e.ErrorCode == QueueErrorCode.QueueNotFound.ToString())
        {
            // The embedded store creates a queue on first put; so does this one.
            await client.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            return (await client.SendMessageAsync(data, delay, NeverExpire, cancellationToken).ConfigureAwait(false)).Value.MessageId;
        }
    }

    public async Task<IReadOnlyList<QueueMessage>> GetAsync(string queue, int maxMessages, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        var client = Queue(queue);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxMessages, 32);
        CheckVisibility(visibilityTimeout, nameof(visibilityTimeout));
        global::Azure.Storage.Queues.Models.QueueMessage[] received;
        try
        {
            received = (await client.ReceiveMessagesAsync(maxMessages, WholeSeconds(visibilityTimeout, minimum: 1), cancellationToken).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }
        var result = new QueueMessage[received.Length];
        for (var i = 0; i < received.Length; i++)
        {
            var m = received[i];
            result[i] = new QueueMessage(m.MessageId, m.PopReceipt, m.Body.ToMemory(), (int)m.DequeueCount,
                m.InsertedOn ?? DateTimeOffset.MinValue, m.NextVisibleOn ?? DateTimeOffset.MinValue);
        }
        return result;
    }

    public async Task<bool> DeleteAsync(string queue, string messageId, string popReceipt, CancellationToken cancellationToken = default)
    {
        var client = Queue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        try
        {
            await client.DeleteMessageAsync(messageId, popReceipt, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (IsStaleReceipt(e))
        {
            return false;
        }
    }

    public async Task<string?> UpdateVisibilityAsync(string queue, string messageId, string popReceipt, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        var client = Queue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        CheckVisibility(visibilityTimeout, nameof(visibilityTimeout));
        try
        {
            var receipt = await client.UpdateMessageAsync(messageId, popReceipt, message: (BinaryData?)null,
                WholeSeconds(visibilityTimeout, minimum: 0), cancellationToken).ConfigureAwait(false);
            return receipt.Value.PopReceipt;
        }
        catch (RequestFailedException e) when (IsStaleReceipt(e))
        {
            return null;
        }
    }

    public async Task<long> GetApproximateCountAsync(string queue, CancellationToken cancellationToken = default)
    {
        var client = Queue(queue);
        try
        {
            return (await client.GetPropertiesAsync(cancellationToken).ConfigureAwait(false)).Value.ApproximateMessagesCountLong;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return 0;
        }
    }

    // A receipt is stale when the message was received again (400 PopReceiptMismatch; Azurite also answers
    // InvalidQueryParameterValue) or already deleted (404 MessageNotFound).
    private static bool IsStaleReceipt(RequestFailedException e) =>
        e.Status == 404
        || (e.Status == 400 && e.ErrorCode is "PopReceiptMismatch" or "InvalidQueryParameterValue");

    private static void CheckVisibility(TimeSpan value, string name)
    {
        if (value < TimeSpan.Zero || value > MaxVisibility)
            throw new ArgumentOutOfRangeException(name, "must be between 0 and 7 days");
    }

    private static TimeSpan WholeSeconds(TimeSpan span, int minimum) =>
        TimeSpan.FromSeconds(Math.Max(minimum, (long)Math.Ceiling(span.TotalSeconds)));
}
