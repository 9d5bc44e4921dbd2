namespace Serverless.TaskHub.Sqlite.Storage;

/// <summary>
/// Which service instances on a task hub file are alive. Each one holds an exclusive lock on a file of its
/// own in <c>&lt;hub file&gt;.owners/</c>, and its lease tokens start with that file's name. The operating
/// system drops the lock when the process dies, however it dies (kill -9 included), so an owner file that
/// can be locked belongs to a dead owner: its leases can be released at once, rather than after they expire.
/// That is what lets a host restarted after a crash carry on where it stopped instead of waiting a lease out.
/// </summary>
internal sealed class LeaseOwners : IDisposable
{
    private readonly string _directory;
    private readonly FileStream _mine;

    public LeaseOwners(string dataSource)
    {
        _directory = Path.GetFullPath(dataSource) + ".owners";
        Directory.CreateDirectory(_directory);
        while (true)
        {
            string id = Guid.NewGuid().ToString("N");
            try
            {
                // FileShare.None takes an exclusive advisory lock (flock on Unix) that lives as long as this handle.
                _mine = new FileStream(Path.Combine(_directory, id), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
                Id = id;
                return;
            }
            catch (IOException)
            {
                // Another instance locked the fresh file in the instant before we did (it took it for a dead
                // owner's): take another name.
            }
        }
    }

    /// <summary>This instance's owner id: the prefix of every lease token it hands out.</summary>
    public string Id { get; }

    /// <summary>A new lease token of this owner.</summary>
    public string NewToken() => Id + ":" + Guid.NewGuid().ToString("N");

    /// <summary>The SQL LIKE pattern of every lease token of <paramref name="ownerId"/> (an id is hex digits only).</summary>
    public static string TokenPattern(string ownerId) => ownerId + ":%";

    /// <summary>The owners whose process is gone: their files could be locked. Their locks are held until <see cref="Forget"/>.</summary>
    public IReadOnlyList<(string Id, FileStream Lock)> FindDead()
    {
        var dead = new List<(string, FileStream)>();
        foreach (string path in Directory.EnumerateFiles(_directory))
        {
            string id = Path.GetFileName(path);
            if (id == Id || id.Length != 32 || !id.All(char.IsAsciiHexDigitLower)) continue;
            try
            {
                dead.Add((id, new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None)));
            }
            catch (IOException)
            {
                // Locked: its owner is alive (or another instance is reclaiming it right now). Gone: already reclaimed.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return dead;
    }

    /// <summary>Removes a dead owner's file once its leases are released.</summary>
    public void Forget(string id, FileStream lockHandle)
    {
        try { File.Delete(Path.Combine(_directory, id)); }
        catch (IOException) { }
        finally { lockHandle.Dispose(); }
    }

    /// <summary>
    /// Drops this instance's lock but keeps its file: any lease it still holds is then a dead owner's, which
    /// the next instance to start releases (a graceful stop has finished its work items and holds none).
    /// </summary>
    public void Dispose() => _mine.Dispose();
}
