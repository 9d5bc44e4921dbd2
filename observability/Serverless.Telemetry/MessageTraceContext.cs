using System.Text.Json;

namespace Serverless.Telemetry;

/// <summary>
/// W3C trace context across a queue. A storage queue message has no headers, so the product's own message
/// contracts carry the producer's <c>traceparent</c> as a top-level <c>traceParent</c> string (ids only), and the
/// host's queue trigger continues that trace. A message without one, or one that is not JSON, starts its own.
/// </summary>
public static class MessageTraceContext
{
    public const string PropertyName = "traceParent";

    /// <summary>The producer's context: the current activity's W3C id, or null outside a trace.</summary>
    public static string? Current() => Activity.Current is { IdFormat: ActivityIdFormat.W3C } a ? a.Id : null;

    /// <summary>The trace context a message body names, if it is a JSON object with a valid top-level <c>traceParent</c>.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out ActivityContext context)
    {
        context = default;
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var mine = reader.ValueTextEquals(PropertyName);
                if (!reader.Read()) return false;
                if (mine) return reader.TokenType == JsonTokenType.String && ActivityContext.TryParse(reader.GetString(), null, out context);
                reader.Skip();
            }
            return false;
        }
        // Malformed JSON, and a string that is not valid UTF-8 (GetString throws InvalidOperationException for it).
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return false;
        }
    }
}
