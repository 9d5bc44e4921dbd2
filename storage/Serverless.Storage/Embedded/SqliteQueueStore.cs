using System.Data;
using Microsoft.Data.Sqlite;

namespace Serverless.Storage.Embedded;

/// <summary>
/// Queues in one SQLite file (WAL mode, so several processes can share it). A receive is a single
/// <c>UPDATE ... RETURNING</c> that hides the rows, bumps their dequeue count and gives each a fresh
/// random pop receipt, so two receivers never get the same message while it is hidden.
/// </summary>
internal sealed class SqliteQueueStore : IQueueStore, IDisposable
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;
    // One long-lived connection, one statement at a time: in-process callers queue on a semaphore instead
    // of colliding on SQLite's write lock (whose busy handler sleeps); other processes still share the
    // file through WAL and busy_timeout.
    private readonly SqliteConnection _connection;
    private readonly SemaphoreSlim _gate = new(1, 1);

    public SqliteQueueStore(string databasePath, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(databasePath))!);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString();
        _connection = Open();
        using var command = _connection.CreateCommand();
        command.CommandText = """
            PRAGMA journal_mode = WAL;
            CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                queue TEXT NOT NULL,
                id TEXT NOT NULL UNIQUE,
                body BLOB NOT NULL,
                inserted_at INTEGER NOT NULL,
                visible_at INTEGER NOT NULL,
                dequeue_count INTEGER NOT NULL DEFAULT 0,
                pop_receipt TEXT);
            CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_at, seq);
            """;
        command.ExecuteNonQuery();
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        // NORMAL is durable in WAL mode against process crashes (the WAL is fsynced at checkpoints; a power
        // loss may drop the last transactions): the trade Azure Functions' own SQLite-backed tools make too.
        pragma.CommandText = "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 30000;";
        pragma.ExecuteNonQuery();
        return connection;
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public async Task CreateQueueAsync(string queue, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = "INSERT OR IGNORE INTO queues (name) VALUES ($q)";
        command.Parameters.AddWithValue("$q", queue);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<string> PutAsync(string queue, ReadOnlyMemory<byte> body, TimeSpan initialVisibilityDelay = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        if (body.Length > IQueueStore.MaxMessageBytes)
            throw new ArgumentException($"A message body is at most {IQueueStore.MaxMessageBytes} bytes; got {body.Length}.", nameof(body));
        if (initialVisibilityDelay < TimeSpan.Zero || initialVisibilityDelay > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(initialVisibilityDelay), "must be between 0 and 7 days");
        var id = Guid.NewGuid().ToString("D");
        var now = Now;
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = """
            INSERT OR IGNORE INTO queues (name) VALUES ($q);
            INSERT INTO messages (queue, id, body, inserted_at, visible_at) VALUES ($q, $id, $body, $now, $visible);
            """;
        command.Parameters.AddWithValue("$q", queue);
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.Add("$body", SqliteType.Blob).Value = body.ToArray();
        command.Parameters.AddWithValue("$now", now);
        command.Parameters.AddWithValue("$visible", now + (long)initialVisibilityDelay.TotalMilliseconds);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return id;
    }

    public async Task<IReadOnlyList<QueueMessage>> GetAsync(string queue, int maxMessages, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxMessages, 32);
        if (visibilityTimeout < TimeSpan.Zero || visibilityTimeout > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(visibilityTimeout), "must be between 0 and 7 days");
        var now = Now;
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = """
            UPDATE messages
               SET visible_at = $until, dequeue_count = dequeue_count + 1, pop_receipt = lower(hex(randomblob(16)))
             WHERE seq IN (SELECT seq FROM messages WHERE queue = $q AND visible_at <= $now ORDER BY visible_at, seq LIMIT $n)
            RETURNING id, pop_receipt, body, dequeue_count, inserted_at, visible_at
            """;
        command.Parameters.AddWithValue("$q", queue);
        command.Parameters.AddWithValue("$now", now);
        command.Parameters.AddWithValue("$until", now + (long)visibilityTimeout.TotalMilliseconds);
        command.Parameters.AddWithValue("$n", maxMessages);
        var messages = new List<QueueMessage>(maxMessages);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            messages.Add(new QueueMessage(
                reader.GetString(0),
                reader.GetString(1),
                (byte[])reader.GetValue(2),
                reader.GetInt32(3),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5))));
        }
        return messages;
    }

    public async Task<bool> DeleteAsync(string queue, string messageId, string popReceipt, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = "DELETE FROM messages WHERE queue = $q AND id = $id AND pop_receipt = $pr";
        command.Parameters.AddWithValue("$q", queue);
        command.Parameters.AddWithValue("$id", messageId);
        command.Parameters.AddWithValue("$pr", popReceipt);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    public async Task<string?> UpdateVisibilityAsync(string queue, string messageId, string popReceipt, TimeSpan visibilityTimeout, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        ArgumentException.ThrowIfNullOrEmpty(messageId);
        ArgumentException.ThrowIfNullOrEmpty(popReceipt);
        if (visibilityTimeout < TimeSpan.Zero || visibilityTimeout > TimeSpan.FromDays(7))
            throw new ArgumentOutOfRangeException(nameof(visibilityTimeout), "must be between 0 and 7 days");
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = """
            UPDATE messages SET visible_at = $until, pop_receipt = lower(hex(randomblob(16)))
             WHERE queue = $q AND id = $id AND pop_receipt = $pr
            RETURNING pop_receipt
            """;
        command.Parameters.AddWithValue("$q", queue);
        command.Parameters.AddWithValue("$id", messageId);
        command.Parameters.AddWithValue("$pr", popReceipt);
        command.Parameters.AddWithValue("$until", Now + (long)visibilityTimeout.TotalMilliseconds);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) as string;
    }

    public async Task<long> GetApproximateCountAsync(string queue, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidQueue(queue);
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = "SELECT count(*) FROM messages WHERE queue = $q";
        command.Parameters.AddWithValue("$q", queue);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    public void Dispose()
    {
        _gate.Wait();
        _connection.Dispose();
    }

    /// <summary>Waits for the connection's turn and hands out a command on it; disposing frees both.</summary>
    private async ValueTask<LockedCommand> LockCommandAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return new LockedCommand(_gate, _connection.CreateCommand());
        }
        catch
        {
            _gate.Release();
            throw;
        }
    }

    /// <summary>A command that holds the connection's gate until it is disposed (command first, then the gate).</summary>
    private readonly struct LockedCommand(SemaphoreSlim gate, SqliteCommand command) : IAsyncDisposable
    {
        public SqliteCommand Command => command;

        public async ValueTask DisposeAsync()
        {
            try
            {
                await command.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                gate.Release();
            }
        }
    }

    /// <summary>A cheap liveness probe for /api/health.</summary>
    internal async Task PingAsync(CancellationToken cancellationToken)
    {
        await using var statement = await LockCommandAsync(cancellationToken).ConfigureAwait(false);
        var command = statement.Command;
        command.CommandText = "SELECT count(*) FROM queues";
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
    }
}
