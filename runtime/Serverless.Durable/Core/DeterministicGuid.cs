using System.Security.Cryptography;
using System.Text;

namespace Serverless.Durable.Core;

/// <summary>Name-based UUIDs, version 5 (SHA-1), as specified in RFC 9562 §5.5 (formerly RFC 4122 §4.3).</summary>
internal static class DeterministicGuid
{
    /// <summary>The namespace of orchestration ids (a fixed random UUID, as Durable Task uses its own).</summary>
    public static readonly Guid OrchestrationNamespace = new("9e952958-5e33-4daf-827f-2fa12937b875");

    /// <summary>RFC 9562's DNS namespace (Appendix A), used by the known-answer test.</summary>
    public static readonly Guid DnsNamespace = new("6ba7b810-9dad-11d1-80b4-00c04fd430c8");

    public static Guid Create(Guid namespaceId, string name)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var buffer = new byte[16 + nameBytes.Length];
        // The namespace is hashed in network byte order (big-endian).
        namespaceId.TryWriteBytes(buffer, bigEndian: true, out _);
        nameBytes.CopyTo(buffer, 16);
        Span<byte> hash = stackalloc byte[20];
        SHA1.HashData(buffer, hash);
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50); // version 5
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80); // RFC variant
        return new Guid(hash[..16], bigEndian: true);
    }
}
