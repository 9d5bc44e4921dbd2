using System.Globalization;
using System.Security;
using System.Xml.Linq;
using Azure;
using Azure.Core;

namespace Serverless.Runtime.Storage.Azure;

/// <summary>
/// Queues over the Queue REST API. Bodies travel base64-encoded in MessageText (as the Azure SDKs do),
/// so any bytes round-trip. Azure counts visibility in whole seconds: timeouts are rounded up.
/// </summary>
internal sealed class AzureQueueStore(AzureStorageClient client) : IQueueStore
{
    public async Task CreateQueueAsync(string queue, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        using var message = client.CreateMessage(RequestMethod.Put, queue);
        await client.SendAsync(message, cancellationToken, 201, 204, 409).ConfigureAwait(false);
    }

    public async Task<string> PutAsync(string queue, ReadOnlyMemory<byte> body, TimeSpan initialVisibilityDelay = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        if (body.Length > IQueueStore.MaxMessageBytes)
            throw new ArgumentException($"A message body is at most {IQueueStore.MaxMessageBytes} bytes; got {body.Length}.", nameof(body));
        if (initialVisibilityDelay < TimeSpan.Zero || initialVisibilityDelay > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(initialVisibilityDelay), "must be between 0 and 7 days");
        var xml = $"<QueueMessage><MessageText>{SecurityElement.Escape(Convert.ToBase64String(body.Span))}</MessageText></QueueMessage>";
        for (var attempt = 0; ; attempt++)
        {
            using var message = client.CreateMessage(RequestMethod.Post, queue + "/messages",
                ("visibilitytimeout", Seconds(initialVisibilityDelay, minimum: 0)), ("messagettl", "-1"));
            message.Request.Headers.SetValue("Content-Type", "application/xml");
            message.Request.Content = RequestContent.Create(System.Text.Encoding.UTF8.GetBytes(xml));
            var response = await client.SendAsync(message, cancellationToken, 201, 404).ConfigureAwait(false);
            if (response.Status == 404 && attempt == 0)
            {
                await CreateQueueAsync(queue, cancellationToken).ConfigureAwait(false); // embedded Put creates the queue too
                continue;
            }
            if (response.Status == 404) throw AzureStorageClient.Failure(response);
            return XDocument.Parse(response.Content.ToString()).Root!.Element("QueueMessage")!.Element("MessageId")!.Value;
        }
    }

    public async Task<IReadOnlyList<QueueMessage>> GetAsync(string queue, int maxMessages, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxMessages, 32);
        if (visibilityTimeout < TimeSpan.Zero || visibilityTimeout > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(visibilityTimeout), "must be between 0 and 7 days");
        using var message = client.CreateMessage(RequestMethod.Get, queue + "/messages",
            ("numofmessages", maxMessages.ToString(CultureInfo.InvariantCulture)), ("visibilitytimeout", Seconds(visibilityTimeout, minimum: 1)));
        var response = await client.SendAsync(message, cancellationToken, 200, 404).ConfigureAwait(false);
        if (response.Status == 404) return [];
        var result = new List<QueueMessage>();
        foreach (var m in XDocument.Parse(response.Content.ToString()).Root!.Elements("QueueMessage"))
        {
            result.Add(new QueueMessage(
                m.Element("MessageId")!.Value,
                m.Element("PopReceipt")!.Value,
                Convert.FromBase64String(m.Element("MessageText")!.Value),
                int.Parse(m.Element("DequeueCount")!.Value, CultureInfo.InvariantCulture),
                DateTimeOffset.Parse(m.Element("InsertionTime")!.Value, CultureInfo.InvariantCulture),
                DateTimeOffset.Parse(m.Element("TimeNextVisible")!.Value, CultureInfo.InvariantCulture)));
        }
        return result;
    }

    public async Task<bool> DeleteAsync(string queue, string messageId, string popReceipt, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        using var message = client.CreateMessage(RequestMethod.Delete, queue + "/messages/" + Uri.EscapeDataString(messageId), ("popreceipt", popReceipt));
        var response = await client.SendAsync(message, cancellationToken, 204, 400, 404).ConfigureAwait(false);
        if (response.Status == 400 && !IsPopReceiptMismatch(response)) throw AzureStorageClient.Failure(response);
        return response.Status == 204;
    }

    public async Task<string?> UpdateVisibilityAsync(string queue, string messageId, string popReceipt, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        if (visibilityTimeout < TimeSpan.Zero || visibilityTimeout > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(visibilityTimeout), "must be between 0 and 7 days");
        using var message = client.CreateMessage(RequestMethod.Put, queue + "/messages/" + Uri.EscapeDataString(messageId),
            ("popreceipt", popReceipt), ("visibilitytimeout", Seconds(visibilityTimeout, minimum: 0)));
        var response = await client.SendAsync(message, cancellationToken, 204, 400, 404).ConfigureAwait(false);
        if (response.Status == 400 && !IsPopReceiptMismatch(response)) throw AzureStorageClient.Failure(response);
        if (response.Status != 204) return null;
        return response.Headers.TryGetValue("x-ms-popreceipt", out var receipt) ? receipt : null;
    }

    public async Task<long> GetApproximateCountAsync(string queue, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        using var message = client.CreateMessage(RequestMethod.Get, queue, ("comp", "metadata"));
        var response = await client.SendAsync(message, cancellationToken, 200, 404).ConfigureAwait(false);
        if (response.Status == 404) return 0;
        return response.Headers.TryGetValue("x-ms-approximate-messages-count", out var count) ? long.Parse(count, CultureInfo.InvariantCulture) : 0;
    }

    private static bool IsPopReceiptMismatch(Response response) =>
        response.Headers.TryGetValue("x-ms-error-code", out var code) && code is "PopReceiptMismatch" or "InvalidQueryParameterValue";

    private static string Seconds(TimeSpan span, int minimum) =>
        Math.Max(minimum, (long)Math.Ceiling(span.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
}
