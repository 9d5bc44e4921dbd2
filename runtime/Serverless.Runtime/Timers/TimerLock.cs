using System.Text.Json;
using Serverless.Runtime.Storage;

namespace Serverless.Runtime.Timers;

/// <summary>
/// Makes a timer a singleton across hosts that share storage (replicas scaled out by KEDA), as Azure
/// Functions does with a blob lease: the lock blob names an owner and an expiry; taking or renewing it is
/// an ETag-conditional write, so when several hosts race for an expired lock exactly one wins.
/// </summary>
internal sealed class TimerLock(IBlobStore store, string functionName, string owner, TimeProvider time, TimeSpan ttl)
{
    private sealed record LockState(string Owner, DateTimeOffset ExpiresAt);

    private string BlobName => $"timers/{functionName}/lock";

    /// <summary>Takes or renews the lock for <c>ttl</c>; false when another live host holds it.</summary>
    public async Task<bool> TryAcquireAsync(CancellationToken cancellationToken)
    {
        string? etag = null;
        await using (var current = await store.GetAsync(BlobName, cancellationToken).ConfigureAwait(false))
        {
            if (current is not null)
            {
                LockState? state = null;
                try
                {
                    state = await JsonSerializer.DeserializeAsync<LockState>(current.Content, JsonSerializerOptions.Web, cancellationToken).ConfigureAwait(false);
                }
                catch (JsonException)
                {
                    // An unreadable lock is treated as expired.
                }
                if (state is not null && state.Owner != owner && state.ExpiresAt > time.GetUtcNow()) return false;
                etag = current.Properties.ETag;
            }
        }
        var next = JsonSerializer.SerializeToUtf8Bytes(new LockState(owner, time.GetUtcNow() + ttl), JsonSerializerOptions.Web);
        try
        {
            await store.PutAsync(BlobName, new MemoryStream(next), etag is null ? BlobCondition.MustNotExist : BlobCondition.MustMatch(etag), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (BlobConditionFailedException)
        {
            return false; // another host took or renewed it between our read and write
        }
    }

    /// <summary>Lets another host take over at once (on a clean shutdown).</summary>
    public async Task ReleaseAsync()
    {
        try
        {
            await using var current = await store.GetAsync(BlobName).ConfigureAwait(false);
            if (current is null) return;
            var state = await JsonSerializer.DeserializeAsync<LockState>(current.Content, JsonSerializerOptions.Web).ConfigureAwait(false);
            if (state?.Owner == owner) await store.DeleteAsync(BlobName, BlobCondition.MustMatch(current.Properties.ETag)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is BlobConditionFailedException or JsonException or IOException)
        {
        }
    }
}
