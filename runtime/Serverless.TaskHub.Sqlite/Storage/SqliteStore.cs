using Microsoft.Data.Sqlite;

namespace Serverless.TaskHub.Sqlite.Storage;

/// <summary>
/// The task hub's SQLite file: one long-lived writer connection that runs one transaction at a
/// time (SQLite has one writer anyway; a kept connection keeps its prepared statements), and
/// pooled reader connections (WAL readers never block the writer). Other processes on the same
/// file take turns through <c>BEGIN IMMEDIATE</c> and <c>busy_timeout</c>.
/// </summary>
internal sealed class SqliteStore : IAsyncDisposable
{
    /// <summary>Bumped when the tables change shape; a file of another version is refused.</summary>
    private const int SchemaVersion = 1;

    private const int BusyTimeoutMs = 30_000;

    private readonly string _connectionString;
    private readonly string _taskHubName;
    private readonly string _synchronous;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Dictionary<string, SqliteCommand> _prepared = new(StringComparer.Ordinal);
    private SqliteConnection? _writer;
    private bool _schemaReady;
    private bool _disposed;

    public SqliteStore(SqliteOrchestrationServiceOptions options)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(options.DataSource));
        if (directory is not null) Directory.CreateDirectory(directory);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = options.DataSource,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = BusyTimeoutMs / 1000,
        }.ToString();
        _taskHubName = options.TaskHubName;
        _synchronous = options.SyncEveryCommit ? "FULL" : "NORMAL";
    }

    /// <summary>A pooled reader connection; the caller disposes it.</summary>
    public async ValueTask<SqliteConnection> OpenReaderAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_schemaReady) await EnsureSchemaAsync(recreate: false, cancellationToken).ConfigureAwait(false);
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"PRAGMA busy_timeout = {BusyTimeoutMs};";
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>
    /// Starts a write transaction (IMMEDIATE: the write lock up front, so a read-then-write inside
    /// it never fails to upgrade). Dispose the scope to end it; only <see cref="WriteScope.CommitAsync"/> keeps its writes.
    /// </summary>
    public async ValueTask<WriteScope> BeginWriteAsync(CancellationToken cancellationToken)
    {
        if (!_schemaReady) await EnsureSchemaAsync(recreate: false, cancellationToken).ConfigureAwait(false);
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _writer ??= await OpenWriterAsync(cancellationToken).ConfigureAwait(false);
            var tx = _writer.BeginTransaction(System.Data.IsolationLevel.Serializable, deferred: false);
            return new WriteScope(this, tx);
        }
        catch
        {
            _writeGate.Release();
            throw;
        }
    }

    private async ValueTask<SqliteConnection> OpenWriterAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"PRAGMA journal_mode = WAL; PRAGMA synchronous = {_synchronous}; PRAGMA busy_timeout = {BusyTimeoutMs};";
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    /// <summary>Creates the tables when missing (or anew), and checks that the file belongs to this task hub.</summary>
    public async Task EnsureSchemaAsync(bool recreate, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_schemaReady && !recreate) return;
            _writer ??= await OpenWriterAsync(cancellationToken).ConfigureAwait(false);
            await using var tx = (SqliteTransaction)await _writer.BeginTransactionAsync(System.Data.IsolationLevel.Serializable, cancellationToken).ConfigureAwait(false);
            await using var cmd = _writer.CreateCommand();
            cmd.Transaction = tx;
            if (recreate)
            {
                cmd.CommandText = DropSql;
                await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            cmd.CommandText = CreateSql;
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            cmd.CommandText = "INSERT INTO taskhub (id, name, schema_version) VALUES (1, @name, @v) ON CONFLICT (id) DO NOTHING; SELECT name, schema_version FROM taskhub WHERE id = 1;";
            cmd.Parameters.AddWithValue("@name", _taskHubName);
            cmd.Parameters.AddWithValue("@v", SchemaVersion);
            await using (var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var name = reader.GetString(0);
                var version = reader.GetInt64(1);
                if (!string.Equals(name, _taskHubName, StringComparison.Ordinal))
                    throw new InvalidOperationException($"The SQLite file holds task hub '{name}', not '{_taskHubName}'.");
                if (version != SchemaVersion)
                    throw new InvalidOperationException($"The SQLite file has task hub schema version {version}; this build reads version {SchemaVersion}.");
            }
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            _schemaReady = true;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Drops every table of the task hub.</summary>
    public async Task DropAsync(CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _writer ??= await OpenWriterAsync(cancellationToken).ConfigureAwait(false);
            RetirePrepared();
            await using var cmd = _writer.CreateCommand();
            cmd.CommandText = DropSql;
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            _schemaReady = false;
        }
        finally
        {
            _writeGate.Release();
        }
    }

    // Times are UTC ticks. instances.state is the OrchestrationState as JSON; the columns beside it
    // are what queries, claims and purges filter on. messages is every instance's inbox (timers
    // with visible_at = FireAt); activities is the activity queue. Both are deleted only by the
    // transaction that consumes them, so a crash re-delivers them once the lease has expired.
    private const string CreateSql = """
        CREATE TABLE IF NOT EXISTS taskhub (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, schema_version INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS instances (
          instance_id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, status INTEGER NOT NULL, state TEXT NOT NULL,
          created_at INTEGER NOT NULL, last_updated_at INTEGER NOT NULL, completed_at INTEGER,
          history_count INTEGER NOT NULL DEFAULT 0, lock_token TEXT, lock_expires INTEGER);
        CREATE INDEX IF NOT EXISTS ix_instances_created ON instances (created_at);
        CREATE TABLE IF NOT EXISTS history (
          instance_id TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (instance_id, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS messages (
          id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, visible_at INTEGER NOT NULL, payload TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS ix_messages_visible ON messages (visible_at);
        CREATE INDEX IF NOT EXISTS ix_messages_instance ON messages (instance_id, id);
        CREATE TABLE IF NOT EXISTS activities (
          id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, visible_at INTEGER NOT NULL,
          lock_token TEXT, lock_expires INTEGER, dequeue_count INTEGER NOT NULL DEFAULT 0, payload TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS ix_activities_instance ON activities (instance_id);
        """;

    private const string DropSql = """
        DROP TABLE IF EXISTS activities; DROP TABLE IF EXISTS messages; DROP TABLE IF EXISTS history;
        DROP TABLE IF EXISTS instances; DROP TABLE IF EXISTS taskhub;
        """;

    /// <summary>The writer's prepared command for <paramref name="sql"/>, bound to <paramref name="tx"/>, parameters cleared.</summary>
    internal SqliteCommand Prepared(SqliteTransaction tx, string sql)
    {
        if (!_prepared.TryGetValue(sql, out var cmd))
        {
            cmd = _writer!.CreateCommand();
            cmd.CommandText = sql;
            _prepared[sql] = cmd;
        }
        cmd.Transaction = tx;
        cmd.Parameters.Clear();
        return cmd;
    }

    private void RetirePrepared()
    {
        foreach (var cmd in _prepared.Values) cmd.Dispose();
        _prepared.Clear();
    }

    internal void ReleaseWriter() => _writeGate.Release();

    /// <summary>Closes the file without touching any lease (a crash, as far as other workers can tell).</summary>
    public async ValueTask DisposeAsync()
    {
        await _writeGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_disposed) return;
            _disposed = true;
            RetirePrepared();
            if (_writer is not null) await _writer.DisposeAsync().ConfigureAwait(false);
            _writer = null;
        }
        finally
        {
            _writeGate.Release();
        }
    }
}

/// <summary>One write transaction on the writer connection, holding the store's write gate until disposed.</summary>
internal sealed class WriteScope(SqliteStore store, SqliteTransaction transaction) : IAsyncDisposable
{
    private bool _disposed;

    public SqliteTransaction Transaction { get; } = transaction;

    public SqliteCommand Command(string sql) => store.Prepared(Transaction, sql);

    public Task CommitAsync(CancellationToken cancellationToken) => Transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try { await Transaction.DisposeAsync().ConfigureAwait(false); }
        finally { store.ReleaseWriter(); }
    }
}

internal static class SqliteCommandExtensions
{
    /// <summary>Adds a parameter (null as SQL NULL) and returns the command, for chaining.</summary>
    public static SqliteCommand With(this SqliteCommand cmd, string name, object? value)
    {
        cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return cmd;
    }
}
