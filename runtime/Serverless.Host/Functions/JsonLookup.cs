namespace Serverless.Host.Functions;

/// <summary>
/// Case-insensitive property lookup in function.json and host.json: the Functions host matches their
/// names without regard to case (<c>"authLevel"</c> and <c>"AuthLevel"</c> both work), and so must we.
/// </summary>
internal static class JsonLookup
{
    public static bool TryGet(JsonElement json, string property, out JsonElement value)
    {
        if (json.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty candidate in json.EnumerateObject())
            {
                if (string.Equals(candidate.Name, property, StringComparison.OrdinalIgnoreCase))
                {
                    value = candidate.Value;
                    return true;
                }
            }
        }
        value = default;
        return false;
    }
}
