namespace Serverless.Storage;

/// <summary>Name rules shared by every backend, so code that works embedded also works on Azure.</summary>
public static class StorageNames
{
    /// <summary>Azure container and queue names: 3-63 chars, lower-case letters, digits and single hyphens, starting and ending alphanumeric.</summary>
    public static bool IsValidContainerName(string? name)
    {
        if (name is null || name.Length is < 3 or > 63) return false;
        if (!char.IsAsciiLetterOrDigit(name[0]) || !char.IsAsciiLetterOrDigit(name[^1])) return false;
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c == '-')
            {
                if (name[i - 1] == '-') return false;
            }
            else if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c)))
            {
                return false;
            }
        }
        return true;
    }

    public static bool IsValidQueueName(string? name) => IsValidContainerName(name);

    /// <summary>Blob names: 1-1024 chars, '/'-separated non-empty segments without "." or "..", no control characters or backslashes.</summary>
    public static bool IsValidBlobName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 1024) return false;
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..") return false;
            foreach (var c in segment)
                if (char.IsControl(c) || c == '\\') return false;
        }
        return true;
    }

    internal static void ThrowIfInvalidQueue(string queue)
    {
        if (!IsValidQueueName(queue))
            throw new ArgumentException($"Invalid queue name '{queue}': 3-63 lower-case letters, digits and single hyphens.", nameof(queue));
    }

    internal static void ThrowIfInvalidContainer(string container)
    {
        if (!IsValidContainerName(container))
            throw new ArgumentException($"Invalid container name '{container}': 3-63 lower-case letters, digits and single hyphens.", nameof(container));
    }

    internal static void ThrowIfInvalidBlob(string name)
    {
        if (!IsValidBlobName(name))
            throw new ArgumentException($"Invalid blob name '{name}': 1-1024 chars of non-empty '/'-separated segments, no '.', '..', '\\' or control characters.", nameof(name));
    }
}

/// <summary>Hands out one <see cref="IBlobStore"/> per container (created on first use).</summary>
public interface IBlobStoreProvider
{
    /// <summary>The store for <paramref name="container"/> (3-63 lower-case letters, digits, hyphens).</summary>
    IBlobStore GetContainer(string container);

    /// <summary>"embedded" or "azure".</summary>
    string BackendName { get; }
}
