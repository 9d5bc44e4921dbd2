using System.Text.Json.Serialization;

namespace Serverless.Host.Timers;

/// <summary>
/// A timer's stored schedule status (as the Functions host keeps it in azure-webjobs-hosts/timers/...):
/// the last occurrence run, the next one expected, and when it was written. All UTC.
/// </summary>
internal sealed record ScheduleStatus(DateTime Last, DateTime Next, DateTime LastUpdated);

/// <summary>
/// One timer's status as a small JSON file, <c>&lt;data&gt;/timers/&lt;function&gt;.status.json</c>. A write goes to
/// a temporary file in the same directory, is flushed to disk, and is renamed over the old one: rename is
/// atomic within a file system, so a crash leaves the old status or the new one, never a torn mix.
/// </summary>
internal sealed class ScheduleStatusFile(string path)
{
    public string Path { get; } = path;

    public static ScheduleStatusFile For(string dataDirectory, string functionName) =>
        new(System.IO.Path.Combine(System.IO.Path.GetFullPath(dataDirectory), "timers", functionName + ".status.json"));

    /// <summary>The stored status; null when there is none, or when the file is unreadable (the caller starts afresh).</summary>
    public ScheduleStatus? Read(out bool unreadable)
    {
        unreadable = false;
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(Path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            StoredStatus? stored = JsonSerializer.Deserialize(bytes, StatusJson.Default.StoredStatus);
            if (stored is { Last: { } last, Next: { } next, LastUpdated: { } updated })
            {
                return new ScheduleStatus(last.UtcDateTime, next.UtcDateTime, updated.UtcDateTime);
            }
        }
        catch (JsonException)
        {
        }
        unreadable = true;
        return null;
    }

    public void Write(ScheduleStatus status)
    {
        string directory = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(directory);
        string temporary = System.IO.Path.Combine(directory, $".{System.IO.Path.GetFileName(Path)}.{Guid.NewGuid():N}.tmp");
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(
            new StoredStatus(Utc(status.Last), Utc(status.Next), Utc(status.LastUpdated)), StatusJson.Default.StoredStatus);
        try
        {
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                file.Write(json);
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, Path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    private static DateTimeOffset Utc(DateTime time) => new(DateTime.SpecifyKind(time, DateTimeKind.Utc));

    internal sealed record StoredStatus(DateTimeOffset? Last, DateTimeOffset? Next, DateTimeOffset? LastUpdated);
}

[JsonSerializable(typeof(ScheduleStatusFile.StoredStatus))]
internal sealed partial class StatusJson : JsonSerializerContext;
