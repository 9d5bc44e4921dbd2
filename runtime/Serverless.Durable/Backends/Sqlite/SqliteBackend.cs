using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Serverless.Durable.Backends.Sqlite;

/// <summary>
/// The embedded backend: one SQLite file. WAL journal with <c>synchronous=NORMAL</c> by default:
/// a committed episode survives a process crash, but the last few commits can be lost on an OS
/// crash or power loss (choose <see cref="SqliteDurability.Full"/> to fsync every commit).
/// Writers in this process take turns (SQLite has one writer at a time anyway).
/// </summary>
internal sealed class SqliteBackend : RelationalBackend
{
    private readonly string _connectionString;
    private readonly string _synchronous;
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    public SqliteBackend(string databasePath, SqliteDurability durability, TimeProvider timeProvider) : base(timeProvider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(databasePath);
        var directory = Path.GetDirectoryName(Path.GetFullPath(databasePath));
        if (directory is not null) Directory.CreateDirectory(directory);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _synchronous = durability == SqliteDurability.Full ? "FULL" : "NORMAL";
        DatabasePath = databasePath;
    }

    public string DatabasePath { get; }

    protected override string T(string table) => table;

    protected override string ForUpdate => "";

    /// <summary>A pooled connection for reads (WAL readers never block the writer).</summary>
    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    private async ValueTask<SqliteConnection> OpenWriterAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"PRAGMA synchronous = {_synchronous}; PRAGMA busy_timeout = 30000;";
        await cmd.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    /// <summary>
    /// Writes go through one long-lived connection, one transaction at a time: SQLite allows one
    /// writer anyway, and a kept connection saves the open and pragma round of every commit.
    /// </summary>
    protected override async ValueTask<WriteScope> BeginWriteAsync(CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken);
        try
        {
            _writer ??= await OpenWriterAsync(cancellationToken);
            // IMMEDIATE takes the write lock up front, so a read-then-write never fails to upgrade.
            var tx = _writer.BeginTransaction(System.Data.IsolationLevel.Serializable, deferred: false);
            return new WriteScope(tx, ReleaseWriter);
        }
        catch
        {
            _writeGate.Release();
            throw;
        }
    }

    private ValueTask ReleaseWriter()
    {
        _writeGate.Release();
        return ValueTask.CompletedTask;
    }

    private SqliteConnection? _writer;
    private readonly Dictionary<string, ReusableCommand> _prepared = new(StringComparer.Ordinal);

    /// <summary>
    /// On the writer connection, one prepared command per SQL text, reused under the write gate:
    /// preparing a statement costs more than running most of ours.
    /// </summary>
    protected override DbCommand CreateCommand(DbConnection connection, DbTransaction? tx, string sql)
    {
        if (!ReferenceEquals(connection, _writer)) return base.CreateCommand(connection, tx, sql);
        if (!_prepared.TryGetValue(sql, out var cmd))
        {
            cmd = new ReusableCommand(sql, _writer);
            _prepared[sql] = cmd;
        }
        cmd.Transaction = (SqliteTransaction?)tx;
        cmd.Parameters.Clear();
        return cmd;
    }

    /// <summary>A command whose dispose (by callers' <c>await using</c>) keeps its prepared statement for the next use.</summary>
    private sealed class ReusableCommand(string sql, SqliteConnection connection) : SqliteCommand(sql, connection)
    {
        public bool Retired { get; set; }

        protected override void Dispose(bool disposing)
        {
            if (Retired) base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync()
        {
            if (Retired) return base.DisposeAsync();
            return ValueTask.CompletedTask;
        }
    }

    protected override string ClaimOrchestrationSql => """
        UPDATE instances SET lock_token = @token, lock_expires = @exp
        WHERE instance_id = (
          SELECT m.instance_id FROM messages m JOIN instances i ON i.instance_id = m.instance_id
          WHERE m.visible_at <= @now AND (i.lock_expires IS NULL OR i.lock_expires < @now) AND (i.status <> 'Suspended' OR m.is_control = 1)
          ORDER BY m.visible_at LIMIT 1)
        RETURNING instance_id, execution_id, name, status, custom_status, history_count
        """;

    protected override string ClaimActivitiesSql => """
        UPDATE tasks SET lock_token = @token, lock_expires = @exp, dequeue_count = dequeue_count + 1
        WHERE id IN (SELECT id FROM tasks WHERE visible_at <= @now AND (lock_expires IS NULL OR lock_expires < @now) ORDER BY id LIMIT @n)
        RETURNING id, instance_id, execution_id, payload, dequeue_count
        """;

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            await wal.ExecuteNonQueryAsync(cancellationToken);
        }
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = """
            CREATE TABLE IF NOT EXISTS instances (
              instance_id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
              input TEXT, output TEXT, custom_status TEXT, failure TEXT,
              created_at INTEGER NOT NULL, last_updated_at INTEGER NOT NULL, lock_token TEXT, lock_expires INTEGER,
              history_count INTEGER NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS ix_instances_created ON instances (created_at);
            CREATE TABLE IF NOT EXISTS history (
              instance_id TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (instance_id, seq)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS messages (
              id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, execution_id TEXT, is_control INTEGER NOT NULL,
              visible_at INTEGER NOT NULL, payload TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_messages_visible ON messages (visible_at);
            CREATE INDEX IF NOT EXISTS ix_messages_instance ON messages (instance_id, id);
            CREATE TABLE IF NOT EXISTS tasks (
              id INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, execution_id TEXT NOT NULL, task_id INTEGER NOT NULL,
              name TEXT NOT NULL, payload TEXT NOT NULL, visible_at INTEGER NOT NULL, lock_token TEXT, lock_expires INTEGER,
              dequeue_count INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_tasks_instance ON tasks (instance_id);
            """;
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    public override async ValueTask DisposeAsync()
    {
        await _writeGate.WaitAsync();
        foreach (var cmd in _prepared.Values)
        {
            cmd.Retired = true;
            await cmd.DisposeAsync();
        }
        _prepared.Clear();
        if (_writer is not null) await _writer.DisposeAsync();
        _writer = null;
        _writeGate.Release();
    }
}

/// <summary>How hard the SQLite backend flushes a commit.</summary>
public enum SqliteDurability
{
    /// <summary>WAL + synchronous=NORMAL: survives process crashes; an OS crash may lose the last commits.</summary>
    Normal,
    /// <summary>WAL + synchronous=FULL: every commit is fsynced.</summary>
    Full,
}
