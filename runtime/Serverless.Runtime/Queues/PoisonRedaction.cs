using System.Text.Json;
using System.Text.Json.Nodes;

namespace Serverless.Runtime.Queues;

/// <summary>
/// Credentials carried in a queue message (a partner's bearer token, say) are removed before the
/// message is copied to its poison queue: the poison queue keeps the message for diagnosis, it is read
/// by operators and tools that must not be able to act as the sender, and the token would outlive the
/// failure there. Only JSON objects and arrays are inspected; a member whose name is one of
/// <see cref="SecretMemberNames"/> (case-insensitive, at any depth) keeps its name and loses its value.
/// Everything else is copied unchanged, so nothing but the credential is lost.
/// </summary>
public static class PoisonRedaction
{
    /// <summary>What a redacted value becomes.</summary>
    public const string Redacted = "[redacted]";

    /// <summary>Member names treated as credentials.</summary>
    public static readonly IReadOnlySet<string> SecretMemberNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "token", "accessToken", "access_token", "bearerToken", "idToken", "id_token", "refreshToken", "refresh_token",
        "authorization", "password", "secret", "clientSecret", "client_secret", "apiKey", "api_key", "sasToken",
    };

    /// <summary>The body with credential members redacted; the body itself when it is not a JSON object or holds none.</summary>
    public static byte[] Redact(ReadOnlyMemory<byte> body)
    {
        var span = body.Span;
        var first = 0;
        while (first < span.Length && span[first] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') first++;
        if (first == span.Length || span[first] is not ((byte)'{' or (byte)'[')) return body.ToArray();
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(span, documentOptions: new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException)
        {
            return body.ToArray();
        }
        if (!RedactIn(root)) return body.ToArray();
        return JsonSerializer.SerializeToUtf8Bytes(root);
    }

    private static bool RedactIn(JsonNode? node)
    {
        var changed = false;
        switch (node)
        {
            case JsonObject o:
                foreach (var name in o.Select(p => p.Key).ToArray())
                {
                    if (SecretMemberNames.Contains(name))
                    {
                        if (o[name] is null) continue;   // JSON null: nothing to hide
                        o[name] = Redacted;
                        changed = true;
                    }
                    else
                    {
                        changed |= RedactIn(o[name]);
                    }
                }
                break;
            case JsonArray a:
                foreach (var item in a) changed |= RedactIn(item);
                break;
        }
        return changed;
    }
}
