using System.IO.Compression;

namespace Serverless.Client.Agent;

/// <summary>
/// Brotli (RFC 7932) for request bodies, sent as <c>Content-Encoding: br</c> when that makes them smaller. It wins
/// back most of base64's third on the key, share and masked-vector fields of the secure-aggregation messages.
/// Compressing before TLS leaks nothing here that the length did not: no body mixes a secret with text an
/// attacker chose (the BREACH condition), and masked vectors and encrypted shares are uniformly random.
/// </summary>
internal static class BodyCompression
{
    public const string Encoding = "br";

    /// <summary>Below this a body is sent as it is: the saving would not pay for the header.</summary>
    private const int MinBytes = 128;

    /// <summary>Brotli's best quality up to this size (a few milliseconds); a faster one above it.</summary>
    private const int BestQualityUpTo = 64 * 1024;

    /// <summary>The body to send, and whether it is compressed.</summary>
    public static (byte[] Bytes, bool Compressed) Compress(byte[] body)
    {
        if (body.Length < MinBytes) return (body, false);
        var output = new byte[BrotliEncoder.GetMaxCompressedLength(body.Length)];
        int quality = body.Length <= BestQualityUpTo ? 11 : 5;
        return BrotliEncoder.TryCompress(body, output, out int written, quality, window: 22) && written < body.Length
            ? (output[..written], true)
            : (body, false);
    }
}
