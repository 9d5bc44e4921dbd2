namespace Serverless.Functions.Inference.Services;

/// <summary>Reads a binary request body up to a limit: the declared length is checked first, the bytes actually sent too.</summary>
internal static class BoundedBody
{
    /// <summary>The body, or null when it is over <paramref name="maxBytes"/> (answer 413).</summary>
    public static async Task<byte[]?> ReadAsync(HttpRequest request, long maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength is { } declared && declared > maxBytes) return null;
        using var buffer = new MemoryStream(request.ContentLength is { } n and > 0 ? (int)Math.Min(n, int.MaxValue) : 0);
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes) return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }
}
