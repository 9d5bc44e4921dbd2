using System.IO.Compression;

namespace Serverless.Client.Tests.Agent;

/// <summary>What an agent's request carries: its body, Brotli-decoded when the agent compressed it.</summary>
internal static class SentBody
{
    public static async Task<byte[]> ReadAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var body = await content.ReadAsByteArrayAsync(cancellationToken);
        if (!content.Headers.ContentEncoding.Contains("br")) return body;
        using var decoded = new MemoryStream();
        using (var brotli = new BrotliStream(new MemoryStream(body), CompressionMode.Decompress)) await brotli.CopyToAsync(decoded, cancellationToken);
        return decoded.ToArray();
    }
}
