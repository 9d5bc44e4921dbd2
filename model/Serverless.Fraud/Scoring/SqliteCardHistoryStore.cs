using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace Serverless.Fraud.Scoring;

/// <summary>
/// The scorer's state in a SQLite file (the store the local host uses), so each card's last k events and
/// the claimed transaction ids survive a restart. Reads and appends work on the in-memory copy (loaded on
/// open); <see cref="Commit"/> writes the cards changed and the ids claimed since the last commit in one
/// transaction, so a crash leaves the file at the last commit: the events of the uncommitted batch are
/// redelivered by the queue and scored again against the same history, and nothing is half-applied.
/// Keys are card tokens; no card number is ever written. Not thread-safe: one per scorer (per partition).
/// </summary>
public sealed class SqliteCardHistoryStore : CardHistoryStore, IDisposable
{
    private const int E = EventFeatures.EventCount;
    private readonly SqliteConnection _db;
    private readonly SqliteCommand _upsertCard, _insertId, _prune;
    private readonly SqliteParameter _token, _lastMs, _next, _length, _ring, _id, _keepFrom;
    private readonly byte[] _tokenBytes = new byte[16];
    private readonly byte[] _ringBytes;
    private long _seq;

    /// <param name="path">The database file (created if missing).</param>
    /// <param name="capacity">k; a file written with another k is refused.</param>
    /// <param name="dedupeCapacity">How many of the latest transaction ids are remembered (in memory and on disk).</param>
    /// <exception cref="InvalidDataException">The file holds state of another shape.</exception>
    public SqliteCardHistoryStore(string path, int capacity, int dedupeCapacity = DefaultDedupeCapacity)
        : base(capacity, dedupeCapacity)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _ringBytes = new byte[capacity * E * sizeof(float)];
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _db.Open();
        try
        {
            Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
            Exec("""
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS cards (token BLOB PRIMARY KEY, last_ms INTEGER NOT NULL, next INTEGER NOT NULL, length INTEGER NOT NULL, ring BLOB NOT NULL) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS claimed (seq INTEGER PRIMARY KEY, id TEXT NOT NULL);
                """);
            using (var meta = _db.CreateCommand())
            {
                meta.CommandText = "INSERT OR IGNORE INTO meta (key, value) VALUES ('steps', $k), ('features', $e); SELECT key, value FROM meta WHERE key IN ('steps', 'features');";
                meta.Parameters.AddWithValue("$k", capacity);
                meta.Parameters.AddWithValue("$e", E);
                using var r = meta.ExecuteReader();
                while (r.Read())
                {
                    var expected = r.GetString(0) == "steps" ? capacity : E;
                    if (r.GetInt64(1) != expected) throw new InvalidDataException($"card history file was written with {r.GetString(0)}={r.GetInt64(1)}, this store uses {expected}");
                }
            }
            Load();
            _upsertCard = _db.CreateCommand();
            _upsertCard.CommandText = "INSERT INTO cards (token, last_ms, next, length, ring) VALUES ($t, $m, $n, $l, $r) ON CONFLICT(token) DO UPDATE SET last_ms = excluded.last_ms, next = excluded.next, length = excluded.length, ring = excluded.ring";
            _token = _upsertCard.Parameters.Add("$t", SqliteType.Blob);
            _lastMs = _upsertCard.Parameters.Add("$m", SqliteType.Integer);
            _next = _upsertCard.Parameters.Add("$n", SqliteType.Integer);
            _length = _upsertCard.Parameters.Add("$l", SqliteType.Integer);
            _ring = _upsertCard.Parameters.Add("$r", SqliteType.Blob);
            _insertId = _db.CreateCommand();
            _insertId.CommandText = "INSERT INTO claimed (seq, id) VALUES ($s, $i)";
            _id = _insertId.Parameters.Add("$i", SqliteType.Text);
            _insertId.Parameters.Add("$s", SqliteType.Integer);
            _prune = _db.CreateCommand();
            _prune.CommandText = "DELETE FROM claimed WHERE seq < $from";
            _keepFrom = _prune.Parameters.Add("$from", SqliteType.Integer);
        }
        catch
        {
            _db.Dispose();
            throw;
        }
    }

    public override void Commit()
    {
        using var tx = _db.BeginTransaction();
        _upsertCard.Transaction = tx;
        _insertId.Transaction = tx;
        _prune.Transaction = tx;
        foreach (var slot in Table.DirtySlots)
        {
            BinaryPrimitives.WriteUInt128BigEndian(_tokenBytes, Table.TokenAt(slot).Value);
            var (lastMs, next, length) = Table.StateAt(slot);
            MemoryMarshal.AsBytes(Table.RingAt(slot)).CopyTo(_ringBytes); // little-endian floats, as every supported .NET platform
            _token.Value = _tokenBytes;
            _lastMs.Value = lastMs;
            _next.Value = next;
            _length.Value = length;
            _ring.Value = _ringBytes;
            _upsertCard.ExecuteNonQuery();
        }
        var seqParam = _insertId.Parameters["$s"];
        foreach (var id in Table.Claimed)
        {
            _id.Value = id;
            seqParam.Value = ++_seq;
            _insertId.ExecuteNonQuery();
        }
        if (Table.Claimed.Count > 0)
        {
            _keepFrom.Value = _seq - Table.DedupeCapacity + 1;
            _prune.ExecuteNonQuery();
        }
        tx.Commit();
        Table.ClearChanges();
    }

    private void Load()
    {
        using (var cards = _db.CreateCommand())
        {
            cards.CommandText = "SELECT token, last_ms, next, length, ring FROM cards";
            using var r = cards.ExecuteReader();
            var ring = new float[Capacity * E];
            while (r.Read())
            {
                var token = (byte[])r.GetValue(0);
                var bytes = (byte[])r.GetValue(4);
                if (token.Length != 16 || bytes.Length != ring.Length * sizeof(float)) throw new InvalidDataException("stored card history has the wrong shape");
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(ring);
                foreach (var v in ring) if (!float.IsFinite(v)) throw new InvalidDataException("stored card history holds a value that is not finite");
                Table.Load(new CardToken(BinaryPrimitives.ReadUInt128BigEndian(token)), r.GetInt64(1), r.GetInt32(2), r.GetInt32(3), ring);
            }
        }
        using var ids = _db.CreateCommand();
        ids.CommandText = "SELECT seq, id FROM claimed ORDER BY seq";
        using var q = ids.ExecuteReader();
        while (q.Read())
        {
            _seq = q.GetInt64(0);
            Table.LoadClaim(q.GetString(1));
        }
    }

    private void Exec(string sql)
    {
        using var c = _db.CreateCommand();
        c.CommandText = sql;
        c.ExecuteNonQuery();
    }

    /// <summary>Closes the file without committing (what is not committed is lost, as in a crash).</summary>
    public void Dispose()
    {
        _upsertCard.Dispose();
        _insertId.Dispose();
        _prune.Dispose();
        _db.Dispose();
    }
}
