using System.Runtime.CompilerServices;
using Serverless.Federation.Rounds;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// Where federations live in the blob store. Container <c>federations</c>: <c>{fed}/state.json</c> (the
/// <see cref="FederationState"/>, updated only with If-Match) and enrollment nonces. Container
/// <c>federation-rounds</c>: per round the plan, each client's phase messages and the phase outputs.
/// Container <c>checkpoints</c> (envelope-encrypted by the security layer): model versions and their
/// ONNX exports. Container <c>datasets</c> (envelope-encrypted): the operator's hold-out sets.
/// </summary>
public sealed class FederationStore(IBlobStoreProvider blobs)
{
    public const string MetaContainer = "federations";
    public const string RoundsContainer = "federation-rounds";
    public const string ModelsContainer = "checkpoints";
    public const string DatasetsContainer = "datasets";

    private IBlobStore Meta => blobs.GetContainer(MetaContainer);
    private IBlobStore Rounds => blobs.GetContainer(RoundsContainer);
    private IBlobStore Models => blobs.GetContainer(ModelsContainer);
    private IBlobStore Datasets => blobs.GetContainer(DatasetsContainer);

    private static string StateName(string fed) => $"{fed}/state.json";

    // ------------------------------------------------------------ federation state

    public async Task<(FederationState State, string ETag)?> GetStateAsync(string federation, CancellationToken ct = default)
    {
        if (!FederationRules.IsValidId(federation)) return null;
        return await ReadAsync<FederationState>(Meta, StateName(federation), ct);
    }

    public async Task<FederationState?> TryGetStateAsync(string federation, CancellationToken ct = default) =>
        (await GetStateAsync(federation, ct))?.State;

    /// <summary>Creates the federation; false when the id exists.</summary>
    public async Task<bool> TryCreateAsync(FederationState state, CancellationToken ct = default)
    {
        try
        {
            await WriteAsync(Meta, StateName(state.Config.Id), state, BlobCondition.MustNotExist, ct);
            return true;
        }
        catch (BlobConditionFailedException)
        {
            return false;
        }
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the current state with an If-Match write, re-reading and
    /// re-applying on a lost race. <paramref name="change"/> may throw to abort; returning the same
    /// instance writes nothing. Null when the federation does not exist.
    /// </summary>
    public async Task<FederationState?> UpdateAsync(string federation, Func<FederationState, FederationState> change, CancellationToken ct = default)
    {
        for (var attempt = 0; ; attempt++)
        {
            var current = await GetStateAsync(federation, ct);
            if (current is null) return null;
            var next = change(current.Value.State);
            if (ReferenceEquals(next, current.Value.State)) return next;
            try
            {
                await WriteAsync(Meta, StateName(federation), next, BlobCondition.MustMatch(current.Value.ETag), ct);
                return next;
            }
            catch (BlobConditionFailedException) when (attempt < 50)
            {
                await Task.Delay(Random.Shared.Next(5, 30), ct);
            }
        }
    }

    public async Task<bool> DeleteAsync(string federation, CancellationToken ct = default) =>
        FederationRules.IsValidId(federation) && await Meta.DeleteAsync(StateName(federation), cancellationToken: ct);

    public async IAsyncEnumerable<FederationState> ListAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        await foreach (var blob in Meta.ListAsync("", ct))
        {
            if (!blob.Name.EndsWith("/state.json", StringComparison.Ordinal) || blob.Name.Count(c => c == '/') != 1) continue;
            var state = await ReadAsync<FederationState>(Meta, blob.Name, ct);
            if (state is not null) yield return state.Value.Value;
        }
    }

    // ------------------------------------------------------------ enrollment nonces

    public Task PutNonceAsync(string federation, string nonce, DateTimeOffset expiresAt, CancellationToken ct = default) =>
        WriteAsync(Meta, $"{federation}/nonces/{nonce}", expiresAt, BlobCondition.MustNotExist, ct);

    /// <summary>Consumes a nonce (single use): its expiry, or null when it was never issued or is used.</summary>
    public async Task<DateTimeOffset?> TakeNonceAsync(string federation, string nonce, CancellationToken ct = default)
    {
        var name = $"{federation}/nonces/{nonce}";
        var stored = await ReadAsync<DateTimeOffset>(Meta, name, ct);
        if (stored is null) return null;
        try
        {
            if (!await Meta.DeleteAsync(name, BlobCondition.MustMatch(stored.Value.ETag), ct)) return null;
        }
        catch (BlobConditionFailedException)
        {
            return null;
        }
        return stored.Value.Value;
    }

    /// <summary>Deletes up to <paramref name="max"/> nonces whose expiry (the number before the first '-') has passed.</summary>
    public async Task SweepNoncesAsync(string federation, DateTimeOffset now, CancellationToken ct = default, int max = 100)
    {
        var prefix = $"{federation}/nonces/";
        var expired = new List<string>();
        await foreach (var blob in Meta.ListAsync(prefix, ct))
        {
            var name = blob.Name[prefix.Length..];
            var dash = name.IndexOf('-');
            if (dash > 0 && long.TryParse(name.AsSpan(0, dash), out var seconds) && seconds < now.ToUnixTimeSeconds()) expired.Add(blob.Name);
            if (expired.Count >= max) break;
        }
        foreach (var name in expired) await Meta.DeleteAsync(name, cancellationToken: ct);
    }

    // ------------------------------------------------------------ rounds

    private static string RoundPrefix(string fed, int round) => $"{fed}/{round}";

    /// <summary>Writes the plan unless one exists; returns the stored plan.</summary>
    public async Task<RoundPlan> WritePlanOnceAsync(RoundPlan plan, CancellationToken ct = default)
    {
        var name = $"{RoundPrefix(plan.Federation, plan.Round)}/plan.json";
        try
        {
            await WriteAsync(Rounds, name, plan, BlobCondition.MustNotExist, ct);
            return plan;
        }
        catch (BlobConditionFailedException)
        {
            return (await ReadAsync<RoundPlan>(Rounds, name, ct))!.Value.Value;
        }
    }

    public async Task<RoundPlan?> GetPlanAsync(string federation, int round, CancellationToken ct = default) =>
        FederationRules.IsValidId(federation) && round > 0 ? (await ReadAsync<RoundPlan>(Rounds, $"{RoundPrefix(federation, round)}/plan.json", ct))?.Value : null;

    private static string MessageName(string fed, int round, string stage, RoundPhase phase, int id) =>
        $"{RoundPrefix(fed, round)}/{stage}/in/{phase}/{id}.json";

    public enum StoreOutcome { Stored, Duplicate, Conflict }

    /// <summary>Stores a client's message for a phase once: the same bytes again are a duplicate, different bytes a conflict.</summary>
    public async Task<StoreOutcome> PutMessageAsync(string fed, int round, string stage, RoundPhase phase, int id, byte[] json, CancellationToken ct = default)
    {
        var name = MessageName(fed, round, stage, phase, id);
        try
        {
            await Rounds.PutAsync(name, new MemoryStream(json), BlobCondition.MustNotExist, ct);
            return StoreOutcome.Stored;
        }
        catch (BlobConditionFailedException)
        {
            var existing = await ReadBytesAsync(Rounds, name, ct);
            return existing is not null && existing.AsSpan().SequenceEqual(json) ? StoreOutcome.Duplicate : StoreOutcome.Conflict;
        }
    }

    public async Task<bool> HasMessageAsync(string fed, int round, string stage, RoundPhase phase, int id, CancellationToken ct = default)
    {
        await using var d = await Rounds.GetAsync(MessageName(fed, round, stage, phase, id), ct);
        return d is not null;
    }

    public async Task<T?> GetMessageAsync<T>(string fed, int round, string stage, RoundPhase phase, int id, CancellationToken ct = default) where T : class
    {
        var bytes = await ReadBytesAsync(Rounds, MessageName(fed, round, stage, phase, id), ct);
        if (bytes is null) return null;
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, RoundJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Total bytes of every client message of a stage (what clients uploaded).</summary>
    /// <summary>
    /// Bytes the clients posted in a stage: each stored message's body as it travelled (compressed, when the client
    /// compressed it; <see cref="PutWireBytesAsync"/>), else the stored JSON's length.
    /// </summary>
    public async Task<long> UploadedBytesAsync(string fed, int round, string stage, CancellationToken ct = default)
    {
        var wire = new Dictionary<string, long>(StringComparer.Ordinal);
        var wirePrefix = $"{RoundPrefix(fed, round)}/{stage}/wire/";
        await foreach (var blob in Rounds.ListAsync(wirePrefix, ct))
        {
            // {phase}/{id}.{bytes}: the count is in the name, so the total needs a listing and no reads.
            var rest = blob.Name[wirePrefix.Length..];
            var dot = rest.LastIndexOf('.');
            if (dot > 0 && long.TryParse(rest.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var bytes))
                wire[rest[..dot]] = bytes;
        }
        long total = 0;
        var inPrefix = $"{RoundPrefix(fed, round)}/{stage}/in/";
        await foreach (var blob in Rounds.ListAsync(inPrefix, ct))
        {
            var key = blob.Name[inPrefix.Length..];
            if (key.EndsWith(".json", StringComparison.Ordinal)) key = key[..^".json".Length];
            total += wire.TryGetValue(key, out var travelled) ? travelled : blob.Length;
        }
        return total;
    }

    /// <summary>Records how many bytes a stored message's body had on the wire (once; a retry's count is ignored).</summary>
    public async Task PutWireBytesAsync(string fed, int round, string stage, RoundPhase phase, int id, long bytes, CancellationToken ct = default)
    {
        try
        {
            await Rounds.PutAsync($"{RoundPrefix(fed, round)}/{stage}/wire/{phase}/{id}.{bytes.ToString(System.Globalization.CultureInfo.InvariantCulture)}", new MemoryStream([]), BlobCondition.MustNotExist, ct);
        }
        catch (BlobConditionFailedException)
        {
        }
    }

    private static string OutputName(string fed, int round, string stage, string kind) => $"{RoundPrefix(fed, round)}/{stage}/out/{kind}.json";

    public Task PutOutputAsync<T>(string fed, int round, string stage, string kind, T value, CancellationToken ct = default) =>
        WriteAsync(Rounds, OutputName(fed, round, stage, kind), value, BlobCondition.None, ct);

    public async Task<T?> GetOutputAsync<T>(string fed, int round, string stage, string kind, CancellationToken ct = default) where T : class =>
        (await ReadAsync<T>(Rounds, OutputName(fed, round, stage, kind), ct))?.Value;

    // ------------------------------------------------------------ model versions (encrypted)

    private static string CheckpointName(string fed, string version) => $"federations/{fed}/{version}.checkpoint.json";
    private static string OnnxName(string fed, string version) => $"federations/{fed}/{version}.onnx";

    /// <summary>Writes a checkpoint unless one exists; returns the stored JSON.</summary>
    public async Task<string> WriteCheckpointOnceAsync(string fed, string version, string json, CancellationToken ct = default)
    {
        try
        {
            await Models.PutAsync(CheckpointName(fed, version), new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)), BlobCondition.MustNotExist, ct);
            return json;
        }
        catch (BlobConditionFailedException)
        {
            return (await GetCheckpointAsync(fed, version, ct))!;
        }
    }

    public async Task<string?> GetCheckpointAsync(string fed, string version, CancellationToken ct = default)
    {
        var bytes = await ReadBytesAsync(Models, CheckpointName(fed, version), ct);
        return bytes is null ? null : System.Text.Encoding.UTF8.GetString(bytes);
    }

    public Task PutOnnxAsync(string fed, string version, byte[] onnx, CancellationToken ct = default) =>
        Models.PutAsync(OnnxName(fed, version), new MemoryStream(onnx), BlobCondition.None, ct);

    public Task<byte[]?> GetOnnxAsync(string fed, string version, CancellationToken ct = default) => ReadBytesAsync(Models, OnnxName(fed, version), ct);

    // ------------------------------------------------------------ hold-out sets (encrypted)

    public static string HoldOutName(string fed) => $"{fed}/holdout.csv";

    public Task PutHoldOutAsync(string fed, byte[] csv, CancellationToken ct = default) =>
        Datasets.PutAsync(HoldOutName(fed), new MemoryStream(csv), BlobCondition.None, ct);

    public Task<byte[]?> GetHoldOutAsync(string blobName, CancellationToken ct = default) => ReadBytesAsync(Datasets, blobName, ct);

    // ------------------------------------------------------------ helpers

    private static async Task WriteAsync<T>(IBlobStore store, string name, T value, BlobCondition condition, CancellationToken ct)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, RoundJson.Options);
        await store.PutAsync(name, new MemoryStream(bytes), condition, ct);
    }

    private static async Task<(T Value, string ETag)?> ReadAsync<T>(IBlobStore store, string name, CancellationToken ct)
    {
        await using var download = await store.GetAsync(name, ct);
        if (download is null) return null;
        var value = await JsonSerializer.DeserializeAsync<T>(download.Content, RoundJson.Options, ct)
            ?? throw new InvalidDataException($"Blob '{name}' holds JSON null.");
        return (value, download.Properties.ETag);
    }

    private static async Task<byte[]?> ReadBytesAsync(IBlobStore store, string name, CancellationToken ct)
    {
        await using var download = await store.GetAsync(name, ct);
        if (download is null) return null;
        using var buffer = new MemoryStream();
        await download.Content.CopyToAsync(buffer, ct);
        return buffer.ToArray();
    }
}
