using System.Data.Common;
using System.Text.RegularExpressions;
using Npgsql;

namespace Serverless.Durable.Backends.Postgres;

/// <summary>
/// The scale-out backend: several worker processes share one PostgreSQL database (one schema per
/// task hub). Work items are claimed with <c>FOR UPDATE SKIP LOCKED</c> plus lease columns, so
/// exactly one worker holds each; an expired lease is taken over by the next claim, and a commit
/// by the old holder is refused because its lock token no longer matches.
/// </summary>
internal sealed partial class PostgresBackend : RelationalBackend
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly string _schema;

    public PostgresBackend(string connectionString, string hubName, TimeProvider timeProvider) : base(timeProvider)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        _schema = SchemaFor(hubName);
        _dataSource = NpgsqlDataSource.Create(connectionString);
    }

    /// <summary>The schema of a hub: <c>durable_</c> + the lower-cased name (letters, digits, underscores).</summary>
    public static string SchemaFor(string hubName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(hubName);
        if (!HubName().IsMatch(hubName))
            throw new ArgumentException($"Hub name '{hubName}' must be 1-50 letters, digits or underscores, starting with a letter.", nameof(hubName));
        return "durable_" + hubName.ToLowerInvariant();
    }

    public static bool IsValidHubName(string? hubName) => hubName is not null && HubName().IsMatch(hubName);

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9_]{0,49}$")]
    private static partial Regex HubName();

    public string Schema => _schema;

    protected override string T(string table) => $"\"{_schema}\".{table}";

    protected override string ForUpdate => " FOR UPDATE";

    protected override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await _dataSource.OpenConnectionAsync(cancellationToken);

    protected override async ValueTask<WriteScope> BeginWriteAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            return new WriteScope(await connection.BeginTransactionAsync(cancellationToken), connection.DisposeAsync);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    protected override string ClaimOrchestrationSql => $"""
        WITH c AS (
          SELECT i.instance_id FROM {T("messages")} m JOIN {T("instances")} i ON i.instance_id = m.instance_id
          WHERE m.visible_at <= @now AND (i.lock_expires IS NULL OR i.lock_expires < @now) AND (i.status <> 'Suspended' OR m.is_control = 1)
          ORDER BY m.visible_at LIMIT 1 FOR UPDATE OF i SKIP LOCKED)
        UPDATE {T("instances")} AS u SET lock_token = @token, lock_expires = @exp FROM c
        WHERE u.instance_id = c.instance_id AND (u.lock_expires IS NULL OR u.lock_expires < @now)
        RETURNING u.instance_id, u.execution_id, u.name, u.status, u.custom_status, u.history_count
        """;

    protected override string ClaimActivitiesSql => $"""
        WITH c AS (
          SELECT id FROM {T("tasks")} WHERE visible_at <= @now AND (lock_expires IS NULL OR lock_expires < @now)
          ORDER BY id LIMIT @n FOR UPDATE SKIP LOCKED)
        UPDATE {T("tasks")} AS u SET lock_token = @token, lock_expires = @exp, dequeue_count = u.dequeue_count + 1 FROM c
        WHERE u.id = c.id
        RETURNING u.id, u.instance_id, u.execution_id, u.payload, u.dequeue_count
        """;

    protected override async Task ExecuteBatchAsync(DbTransaction tx, IReadOnlyList<(string Sql, (string, object?)[] Parameters)> statements, CancellationToken ct)
    {
        if (statements.Count == 0) return;
        // One round trip for the whole episode.
        await using var batch = new NpgsqlBatch((NpgsqlConnection)tx.Connection!, (NpgsqlTransaction)tx);
        foreach (var (sql, parameters) in statements)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (var (name, value) in parameters)
                command.Parameters.Add(value is null ? new NpgsqlParameter(name, NpgsqlTypes.NpgsqlDbType.Text) { Value = DBNull.Value } : new NpgsqlParameter(name, value));
            batch.BatchCommands.Add(command);
        }
        await batch.ExecuteNonQueryAsync(ct);
    }

    public override async Task InitializeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken);
        await using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        // The advisory lock keeps two processes from racing on CREATE ... IF NOT EXISTS.
        cmd.CommandText = $"""
            SELECT pg_advisory_xact_lock(hashtext('{_schema}'));
            CREATE SCHEMA IF NOT EXISTS "{_schema}";
            CREATE TABLE IF NOT EXISTS {T("instances")} (
              instance_id text PRIMARY KEY, execution_id text NOT NULL, name text NOT NULL, status text NOT NULL,
              input text, output text, custom_status text, failure text,
              created_at bigint NOT NULL, last_updated_at bigint NOT NULL, lock_token text, lock_expires bigint,
              history_count bigint NOT NULL DEFAULT 0);
            CREATE INDEX IF NOT EXISTS ix_instances_created ON {T("instances")} (created_at);
            CREATE TABLE IF NOT EXISTS {T("history")} (
              instance_id text NOT NULL, seq bigint NOT NULL, payload text NOT NULL, PRIMARY KEY (instance_id, seq));
            CREATE TABLE IF NOT EXISTS {T("messages")} (
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, instance_id text NOT NULL, execution_id text, is_control integer NOT NULL,
              visible_at bigint NOT NULL, payload text NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_messages_visible ON {T("messages")} (visible_at);
            CREATE INDEX IF NOT EXISTS ix_messages_instance ON {T("messages")} (instance_id, id);
            CREATE TABLE IF NOT EXISTS {T("tasks")} (
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, instance_id text NOT NULL, execution_id text NOT NULL, task_id bigint NOT NULL,
              name text NOT NULL, payload text NOT NULL, visible_at bigint NOT NULL, lock_token text, lock_expires bigint,
              dequeue_count bigint NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_tasks_instance ON {T("tasks")} (instance_id);
            -- Queue tables churn (every row is inserted once and deleted once): vacuum them early so
            -- claim scans do not wade through dead index entries.
            ALTER TABLE {T("messages")} SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 200);
            ALTER TABLE {T("tasks")} SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 200);
            ALTER TABLE {T("instances")} SET (autovacuum_vacuum_scale_factor = 0.05, fillfactor = 80);
            """;
        await cmd.ExecuteNonQueryAsync(cancellationToken);
        await tx.CommitAsync(cancellationToken);
    }

    /// <summary>Drops the hub's schema (tests and benchmarks clean up with it).</summary>
    public async Task DropAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = $"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE";
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    public override ValueTask DisposeAsync() => _dataSource.DisposeAsync();
}
