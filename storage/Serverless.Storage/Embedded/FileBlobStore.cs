using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;

namespace Serverless.Storage.Embedded;

/// <summary>
/// Blobs as files under a directory. Each file starts with a 32-byte header (magic, ETag, write time)
/// so content and ETag are replaced together by one atomic rename. Writers serialize per blob on a
/// striped lock: an in-process semaphore plus an exclusive OS file lock (flock on Unix), so a
/// conditional write is check-then-rename under the lock across threads and processes alike.
/// Readers take no lock: rename(2) guarantees they see the old file or the new one.
/// </summary>
internal sealed class FileBlobStore : IBlobStore
{
    private const int HeaderSize = 32;
    private const int LockStripes = 64;
    private static readonly byte[] Magic = "SVB1"u8.ToArray();
    private const string Extension = ".blob";

    private readonly string _root;
    private readonly string _lockDirectory;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim[] _stripes = CreateStripes();

    public FileBlobStore(string directory, TimeProvider? time = null)
    {
        _root = Path.GetFullPath(directory);
        _lockDirectory = Path.Combine(_root, ".locks");
        Directory.CreateDirectory(_lockDirectory);
        _time = time ?? TimeProvider.System;
    }

    private static SemaphoreSlim[] CreateStripes()
    {
        var stripes = new SemaphoreSlim[LockStripes];
        for (var i = 0; i < stripes.Length; i++) stripes[i] = new SemaphoreSlim(1, 1);
        return stripes;
    }

    public async Task<BlobProperties> PutAsync(string name, Stream content, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        ArgumentNullException.ThrowIfNull(content);
        var path = PathOf(name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);

        // Write the new version to a temp file first, outside the lock: the lock only covers check + rename.
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".tmp-{Guid.NewGuid():N}");
        var etag = NewETag();
        var modified = _time.GetUtcNow();
        long length;
        try
        {
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, FileOptions.Asynchronous))
            {
                var header = new byte[HeaderSize];
                WriteHeader(header, etag, modified);
                await file.WriteAsync(header, cancellationToken).ConfigureAwait(false);
                await content.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
                length = file.Length - HeaderSize;
                await file.FlushAsync(cancellationToken).ConfigureAwait(false);
                file.Flush(flushToDisk: true);
            }

            using (await LockAsync(name, cancellationToken).ConfigureAwait(false))
            {
                var current = ReadProperties(name, path);
                if (!Holds(condition, current)) throw new BlobConditionFailedException(name, condition);
                File.Move(temp, path, overwrite: true);
            }
        }
        finally
        {
            if (File.Exists(temp)) TryDelete(temp);
        }
        return new BlobProperties(name, QuoteETag(etag), length, modified);
    }

    public Task<BlobDownload?> GetAsync(string name, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        FileStream file;
        try
        {
            file = new FileStream(PathOf(name), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 81920, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<BlobDownload?>(null);
        }
        try
        {
            var header = new byte[HeaderSize];
            file.ReadExactly(header);
            var (etag, modified) = ParseHeader(header, name);
            var properties = new BlobProperties(name, QuoteETag(etag), file.Length - HeaderSize, modified);
            return Task.FromResult<BlobDownload?>(new BlobDownload(properties, new OffsetReadStream(file, HeaderSize)));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public async IAsyncEnumerable<BlobProperties> ListAsync(string prefix = "", [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        // Start at the deepest directory that the prefix's complete segments name.
        var slash = prefix.LastIndexOf('/');
        var start = slash < 0 ? _root : Path.Combine(_root, EncodeDirectory(prefix[..slash]));
        if (!Directory.Exists(start)) yield break;
        var names = new List<string>();
        foreach (var file in Directory.EnumerateFiles(start, "*" + Extension, SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(_root, file);
            if (relative.StartsWith(".locks", StringComparison.Ordinal)) continue;
            var name = Decode(relative);
            if (name is not null && name.StartsWith(prefix, StringComparison.Ordinal)) names.Add(name);
        }
        names.Sort(StringComparer.Ordinal);
        foreach (var name in names)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var properties = ReadProperties(name, PathOf(name));
            if (properties is not null) yield return properties;
            await Task.CompletedTask.ConfigureAwait(false);
        }
    }

    public async Task<bool> DeleteAsync(string name, BlobCondition condition = default, CancellationToken cancellationToken = default)
    {
        StorageNames.ThrowIfInvalidBlob(name);
        var path = PathOf(name);
        using (await LockAsync(name, cancellationToken).ConfigureAwait(false))
        {
            var current = ReadProperties(name, path);
            if (!Holds(condition, current)) throw new BlobConditionFailedException(name, condition);
            if (current is null) return false;
            File.Delete(path);
            return true;
        }
    }

    private static bool Holds(BlobCondition condition, BlobProperties? current)
    {
        if (condition.IfMatch is { } ifMatch)
        {
            if (current is null) return false;
            if (ifMatch != "*" && !ETagEquals(ifMatch, current.ETag)) return false;
        }
        if (condition.IfNoneMatch is { } ifNoneMatch && current is not null)
        {
            if (ifNoneMatch == "*" || ETagEquals(ifNoneMatch, current.ETag)) return false;
        }
        return true;
    }

    private static bool ETagEquals(string a, string b) => string.Equals(a.Trim('"'), b.Trim('"'), StringComparison.Ordinal);

    private BlobProperties? ReadProperties(string name, string path)
    {
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
            Span<byte> header = stackalloc byte[HeaderSize];
            file.ReadExactly(header);
            var (etag, modified) = ParseHeader(header, name);
            return new BlobProperties(name, QuoteETag(etag), file.Length - HeaderSize, modified);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private static string NewETag() => Convert.ToHexString(RandomNumberGenerator.GetBytes(16));

    private static string QuoteETag(string etag) => "\"" + etag + "\"";

    private static void WriteHeader(Span<byte> header, string etag, DateTimeOffset modified)
    {
        Magic.CopyTo(header);
        Convert.FromHexString(etag).CopyTo(header[4..20]);
        BinaryPrimitives.WriteInt64LittleEndian(header[20..28], modified.UtcTicks);
    }

    private static (string ETag, DateTimeOffset Modified) ParseHeader(ReadOnlySpan<byte> header, string name)
    {
        if (!header[..4].SequenceEqual(Magic))
            throw new InvalidDataException($"Blob '{name}' is not a blob file (bad header).");
        var ticks = BinaryPrimitives.ReadInt64LittleEndian(header[20..28]);
        if (ticks < DateTimeOffset.MinValue.UtcTicks || ticks > DateTimeOffset.MaxValue.UtcTicks)
            throw new InvalidDataException($"Blob '{name}' has a corrupt header.");
        return (Convert.ToHexString(header[4..20]), new DateTimeOffset(ticks, TimeSpan.Zero));
    }

    private string PathOf(string name) => Path.Combine(_root, EncodeDirectory(name) + Extension);

    /// <summary>Each segment percent-encodes everything but [A-Za-z0-9-_] (and '.' not leading), so names map 1:1 to safe paths.</summary>
    private static string EncodeDirectory(string name)
    {
        var segments = name.Split('/');
        for (var i = 0; i < segments.Length; i++) segments[i] = EncodeSegment(segments[i]);
        return Path.Combine(segments);
    }

    private static string EncodeSegment(string segment)
    {
        var sb = new StringBuilder(segment.Length);
        var bytes = Encoding.UTF8.GetBytes(segment);
        for (var i = 0; i < bytes.Length; i++)
        {
            var b = bytes[i];
            var safe = b is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9') or (byte)'-' or (byte)'_'
                || (b == (byte)'.' && i > 0);
            if (safe) sb.Append((char)b);
            else sb.Append('%').Append(b.ToString("X2"));
        }
        return sb.ToString();
    }

    private static string? Decode(string relativePath)
    {
        if (!relativePath.EndsWith(Extension, StringComparison.Ordinal)) return null;
        var segments = relativePath[..^Extension.Length].Split(Path.DirectorySeparatorChar);
        for (var i = 0; i < segments.Length; i++)
        {
            try
            {
                segments[i] = Uri.UnescapeDataString(segments[i]);
            }
            catch (UriFormatException)
            {
                return null;
            }
        }
        return string.Join('/', segments);
    }

    private async Task<IDisposable> LockAsync(string name, CancellationToken cancellationToken)
    {
        // A stable hash (string.GetHashCode is randomized per process) so every process picks the same lock file.
        var fileStripe = (int)(Fnv1a(name) % LockStripes);
        var gate = _stripes[fileStripe];
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var lockPath = Path.Combine(_lockDirectory, $"{fileStripe:D2}.lock");
            var delay = 1;
            while (true)
            {
                try
                {
                    // FileShare.None takes an exclusive flock on Unix (a share-mode lock on Windows): held until disposed.
                    var handle = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1);
                    return new Releaser(handle, gate);
                }
                catch (IOException)
                {
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    delay = Math.Min(delay * 2, 20);
                }
            }
        }
        catch
        {
            gate.Release();
            throw;
        }
    }

    private static uint Fnv1a(string s)
    {
        var hash = 2166136261u;
        foreach (var c in s)
        {
            hash ^= c;
            hash *= 16777619u;
        }
        return hash;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
    }

    private sealed class Releaser(FileStream handle, SemaphoreSlim gate) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
            handle.Dispose();
            gate.Release();
        }
    }
}

/// <summary>A read-only view of a stream that hides its first <c>offset</c> bytes.</summary>
internal sealed class OffsetReadStream(Stream inner, long offset) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => false;
    public override long Length => inner.Length - offset;

    public override long Position
    {
        get => inner.Position - offset;
        set => inner.Position = value + offset;
    }

    public override int Read(byte[] buffer, int index, int count) => inner.Read(buffer, index, count);
    public override int Read(Span<byte> buffer) => inner.Read(buffer);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
    public override Task<int> ReadAsync(byte[] buffer, int index, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, index, count, cancellationToken);

    public override long Seek(long position, SeekOrigin origin) => origin switch
    {
        SeekOrigin.Begin => inner.Seek(position + offset, SeekOrigin.Begin) - offset,
        SeekOrigin.Current => inner.Seek(position, SeekOrigin.Current) - offset,
        _ => inner.Seek(position, SeekOrigin.End) - offset,
    };

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int index, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override ValueTask DisposeAsync() => inner.DisposeAsync();
}
