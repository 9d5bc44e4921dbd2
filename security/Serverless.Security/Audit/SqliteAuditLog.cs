using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;

namespace Serverless.Security.Audit;

/// <summary>Where the audit log lives and how often it is anchored.</summary>
public sealed record AuditLogOptions
{
    /// <summary>SQLite file, e.g. <c>&lt;data&gt;/audit.db</c>.</summary>
    public required string DatabasePath { get; init; }

    /// <summary>Signing key (ES256) in the key vault for checkpoints; created on first use.</summary>
    public string SigningKeyName { get; init; } = "audit-signing";

    /// <summary>A signed checkpoint is written automatically after this many new entries (0 = only on request).</summary>
    public int CheckpointEvery { get; init; } = 1000;

    /// <summary>Largest number of appends committed in one transaction (group commit).</summary>
    public int MaxBatch { get; init; } = 256;
}

/// <summary>
/// The audit trail in SQLite (WAL, synchronous=FULL: an append is on disk when its task completes).
/// Appends are serialized through one writer that commits waiting appends together (group commit),
/// so concurrent callers share an fsync. Triggers refuse UPDATE and DELETE; someone with the file
/// can still edit it, which is what the hash chain and the signed checkpoints expose. Several
/// processes may append to one file: each batch reads the head under SQLite's write lock.
/// </summary>
public sealed class SqliteAuditLog : IAuditLog, IAsyncDisposable
{
    private readonly AuditLogOptions _options;
    private readonly IKeyVault _vault;
    private readonly TimeProvider _time;
    private readonly string _connectionString;
    private readonly ConcurrentQueue<(AuditEvent Event, TaskCompletionSource<AuditEntry> Done)> _pending = new();
    private readonly SemaphoreSlim _checkpointGate = new(1, 1);
    private SqliteConnection? _writer;
    private int _writing;
    private long _headSequence;
    private byte[] _headHash = AuditHashing.Genesis;
    private long _lastCheckpointSequence;
    private Task _drain = Task.CompletedTask;

    private SqliteAuditLog(AuditLogOptions options, IKeyVault vault, TimeProvider time)
    {
        _options = options;
        _vault = vault;
        _time = time;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = options.DatabasePath, Pooling = false }.ToString();
    }

    /// <summary>Opens (creating if needed) the log and reads its head.</summary>
    public static async Task<SqliteAuditLog> OpenAsync(AuditLogOptions options, IKeyVault vault, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(vault);
        if (options.MaxBatch < 1) throw new ArgumentOutOfRangeException(nameof(options), "MaxBatch must be at least 1.");
        var directory = Path.GetDirectoryName(Path.GetFullPath(options.DatabasePath));
        if (directory is not null) Directory.CreateDirectory(directory);
        var log = new SqliteAuditLog(options, vault, time ?? TimeProvider.System);
        var connection = new SqliteConnection(log._connectionString);
        await connection.OpenAsync(cancellationToken);
        await ExecuteAsync(connection, """
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS audit_entries (
                seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL,
                outcome INTEGER NOT NULL, request_id TEXT NOT NULL, detail TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS audit_checkpoints (
                seq INTEGER PRIMARY KEY, head_hash BLOB NOT NULL, ts_ms INTEGER NOT NULL,
                key_name TEXT NOT NULL, key_version TEXT NOT NULL, alg TEXT NOT NULL, signature BLOB NOT NULL);
            CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
            CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
            CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
            CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
            """, cancellationToken);
        await using (var head = connection.CreateCommand())
        {
            head.CommandText = "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1";
            await using var reader = await head.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                log._headSequence = reader.GetInt64(0);
                log._headHash = (byte[])reader[1];
            }
        }
        await using (var last = connection.CreateCommand())
        {
            last.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints";
            log._lastCheckpointSequence = (long)(await last.ExecuteScalarAsync(cancellationToken))!;
        }
        log._writer = connection;
        return log;
    }

    public Task<AuditEntry> AppendAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(auditEvent);
        ArgumentException.ThrowIfNullOrEmpty(auditEvent.Actor);
        ArgumentException.ThrowIfNullOrEmpty(auditEvent.Action);
        ArgumentNullException.ThrowIfNull(auditEvent.Resource);
        if (!Enum.IsDefined(auditEvent.Outcome)) throw new ArgumentOutOfRangeException(nameof(auditEvent), "Unknown outcome.");
        ObjectDisposedException.ThrowIf(_writer is null, this);
        var done = new TaskCompletionSource<AuditEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending.Enqueue((auditEvent, done));
        if (Interlocked.CompareExchange(ref _writing, 1, 0) == 0) _drain = Task.Run(DrainAsync, CancellationToken.None);
        return done.Task;
    }

    // One writer at a time: takes whatever is queued (up to MaxBatch), commits it in one transaction, repeats.
    private async Task DrainAsync()
    {
        var batch = new List<(AuditEvent Event, TaskCompletionSource<AuditEntry> Done)>(_options.MaxBatch);
        while (true)
        {
            batch.Clear();
            while (batch.Count < _options.MaxBatch && _pending.TryDequeue(out var item)) batch.Add(item);
            if (batch.Count == 0)
            {
                Volatile.Write(ref _writing, 0);
                // An append may have slipped in after the last TryDequeue but before the flag was cleared.
                if (_pending.IsEmpty || Interlocked.CompareExchange(ref _writing, 1, 0) != 0) return;
                continue;
            }
            AuditEntry[] entries;
            try
            {
                entries = await WriteBatchAsync(batch);
            }
            catch (Exception e)
            {
                foreach (var item in batch) item.Done.TrySetException(e);
                continue;
            }
            // The append that crosses the threshold completes once its checkpoint is signed, so callers
            // (and tests) observe checkpoints deterministically.
            if (_options.CheckpointEvery > 0 && _headSequence - Volatile.Read(ref _lastCheckpointSequence) >= _options.CheckpointEvery)
            {
                try { await CheckpointAsync(); }
                catch (Exception) { /* entries are committed; the next batch retries the checkpoint */ }
            }
            for (var i = 0; i < batch.Count; i++) batch[i].Done.TrySetResult(entries[i]);
        }
    }

    private async Task<AuditEntry[]> WriteBatchAsync(List<(AuditEvent Event, TaskCompletionSource<AuditEntry> Done)> batch)
    {
        var connection = _writer ?? throw new ObjectDisposedException(nameof(SqliteAuditLog));
        var entries = new AuditEntry[batch.Count];
        // BEGIN IMMEDIATE takes the write lock first; the head is then read inside the transaction, so
        // several processes appending to one file (hosts sharing a data directory) extend one chain.
        await using var transaction = connection.BeginTransaction(System.Data.IsolationLevel.Serializable, deferred: false);
        var sequence = 0L;
        var previous = AuditHashing.Genesis;
        await using (var head = connection.CreateCommand())
        {
            head.Transaction = transaction;
            head.CommandText = "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1";
            await using var reader = await head.ExecuteReaderAsync();
            if (await reader.ReadAsync())
            {
                sequence = reader.GetInt64(0);
                previous = (byte[])reader[1];
            }
        }
        await using var insert = connection.CreateCommand();
        insert.Transaction = transaction;
        insert.CommandText = """
            INSERT INTO audit_entries (seq, ts_ms, actor, action, resource, outcome, request_id, detail, prev_hash, hash)
            VALUES ($seq, $ts, $actor, $action, $resource, $outcome, $request, $detail, $prev, $hash)
            """;
        var parameters = new[] { "$seq", "$ts", "$actor", "$action", "$resource", "$outcome", "$request", "$detail", "$prev", "$hash" }
            .Select(name => insert.Parameters.Add(new SqliteParameter { ParameterName = name })).ToArray();
        for (var i = 0; i < batch.Count; i++)
        {
            var e = batch[i].Event;
            var timestamp = DateTimeOffset.FromUnixTimeMilliseconds(_time.GetUtcNow().ToUnixTimeMilliseconds());
            sequence++;
            var requestId = e.RequestId ?? "";
            var detail = e.Detail ?? "";
            var hash = AuditHashing.ComputeHash(sequence, timestamp, e.Actor, e.Action, e.Resource, e.Outcome, requestId, detail, previous);
            object[] values = [sequence, timestamp.ToUnixTimeMilliseconds(), e.Actor, e.Action, e.Resource, (int)e.Outcome, requestId, detail, previous, hash];
            for (var p = 0; p < values.Length; p++) parameters[p].Value = values[p];
            await insert.ExecuteNonQueryAsync();
            entries[i] = new AuditEntry(sequence, timestamp, e.Actor, e.Action, e.Resource, e.Outcome, requestId, detail, previous, hash);
            previous = hash;
        }
        await transaction.CommitAsync();
        _headSequence = sequence;
        _headHash = previous;
        return entries;
    }

    public async IAsyncEnumerable<AuditEntry> ReadAsync(long fromSequence = 1, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT seq, ts_ms, actor, action, resource, outcome, request_id, detail, prev_hash, hash FROM audit_entries WHERE seq >= $from ORDER BY seq";
        command.Parameters.AddWithValue("$from", fromSequence);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return new AuditEntry(reader.GetInt64(0), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), reader.GetString(2), reader.GetString(3),
                reader.GetString(4), (AuditOutcome)reader.GetInt32(5), reader.GetString(6), reader.GetString(7), (byte[])reader[8], (byte[])reader[9]);
        }
    }

    public async Task<AuditCheckpoint?> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        await _checkpointGate.WaitAsync(cancellationToken);
        try
        {
            await using var connection = new SqliteConnection(_connectionString);
            await connection.OpenAsync(cancellationToken);
            long sequence;
            byte[] head;
            await using (var read = connection.CreateCommand())
            {
                read.CommandText = "SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1";
                await using var reader = await read.ExecuteReaderAsync(cancellationToken);
                if (!await reader.ReadAsync(cancellationToken)) return null;
                sequence = reader.GetInt64(0);
                head = (byte[])reader[1];
            }
            if (sequence <= Volatile.Read(ref _lastCheckpointSequence))
            {
                await foreach (var existing in ReadCheckpointsAsync(cancellationToken))
                    if (existing.Sequence == sequence) return existing;
            }
            if (await _vault.GetCurrentVersionAsync(_options.SigningKeyName, cancellationToken) is null)
                await _vault.CreateKeyAsync(_options.SigningKeyName, KeyKind.Signing, cancellationToken);
            var timestamp = DateTimeOffset.FromUnixTimeMilliseconds(_time.GetUtcNow().ToUnixTimeMilliseconds());
            var signature = await _vault.SignAsync(_options.SigningKeyName, AuditHashing.CheckpointDigest(sequence, head, timestamp), cancellationToken);
            await using (var insert = connection.CreateCommand())
            {
                insert.CommandText = """
                    INSERT OR IGNORE INTO audit_checkpoints (seq, head_hash, ts_ms, key_name, key_version, alg, signature)
                    VALUES ($seq, $head, $ts, $name, $version, $alg, $sig)
                    """;
                insert.Parameters.AddWithValue("$seq", sequence);
                insert.Parameters.AddWithValue("$head", head);
                insert.Parameters.AddWithValue("$ts", timestamp.ToUnixTimeMilliseconds());
                insert.Parameters.AddWithValue("$name", signature.KeyId.Name);
                insert.Parameters.AddWithValue("$version", signature.KeyId.Version);
                insert.Parameters.AddWithValue("$alg", signature.Algorithm);
                insert.Parameters.AddWithValue("$sig", signature.Value);
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
            Volatile.Write(ref _lastCheckpointSequence, sequence);
            return new AuditCheckpoint(sequence, head, timestamp, signature);
        }
        finally
        {
            _checkpointGate.Release();
        }
    }

    public async IAsyncEnumerable<AuditCheckpoint> ReadCheckpointsAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT seq, head_hash, ts_ms, key_name, key_version, alg, signature FROM audit_checkpoints ORDER BY seq";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return new AuditCheckpoint(reader.GetInt64(0), (byte[])reader[1], DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)),
                new KeySignature(new KeyId(reader.GetString(3), reader.GetString(4)), reader.GetString(5), (byte[])reader[6]));
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Let queued appends finish before the connection goes away.
        while (!_pending.IsEmpty || Volatile.Read(ref _writing) == 1) await Task.Delay(1);
        await _drain;
        if (_writer is { } writer)
        {
            _writer = null;
            await writer.DisposeAsync();
        }
        _checkpointGate.Dispose();
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}
