namespace Serverless.Storage;

/// <summary>
/// At-least-once message queues, shaped like Azure Queue Storage: a received message is hidden
/// for a visibility timeout and comes back unless it is deleted with its pop receipt.
/// </summary>
public interface IQueueStore
{
    /// <summary>Creates the queue if it does not exist.</summary>
    Task CreateQueueAsync(string queue, CancellationToken cancellationToken = default);

    /// <summary>Appends a message (at most <see cref="MaxMessageBytes"/>); it becomes visible after <paramref name="initialVisibilityDelay"/>.</summary>
    Task<string> PutAsync(string queue, ReadOnlyMemory<byte> body, TimeSpan initialVisibilityDelay = default, CancellationToken cancellationToken = default);

    /// <summary>
    /// Receives up to <paramref name="maxMessages"/> visible messages and hides each for
    /// <paramref name="visibilityTimeout"/>; every receive increments its dequeue count and
    /// issues a new pop receipt.
    /// </summary>
    Task<IReadOnlyList<QueueMessage>> GetAsync(string queue, int maxMessages, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default);

    /// <summary>Deletes a received message; returns false when the receipt is stale (the message was received again).</summary>
    Task<bool> DeleteAsync(string queue, string messageId, string popReceipt, CancellationToken cancellationToken = default);

    /// <summary>Hides (or reveals, with zero) a received message again; returns its new pop receipt, or null when the receipt is stale.</summary>
    Task<string?> UpdateVisibilityAsync(string queue, string messageId, string popReceipt, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default);

    /// <summary>Approximate number of messages in the queue, visible or not.</summary>
    Task<long> GetApproximateCountAsync(string queue, CancellationToken cancellationToken = default);

    /// <summary>Azure Queue Storage's limit on a message body.</summary>
    public const int MaxMessageBytes = 64 * 1024;
}

/// <summary>A received message.</summary>
public sealed record QueueMessage(string Id, string PopReceipt, ReadOnlyMemory<byte> Body, int DequeueCount, DateTimeOffset InsertedAt, DateTimeOffset NextVisibleAt);
