namespace Serverless.Functions.Hosting;

/// <summary>The trigger's message as the queue store describes it (binding data Id, DequeueCount, InsertionTime).</summary>
internal sealed record ReceivedMessage(string Id, ReadOnlyMemory<byte> Body, int DequeueCount, DateTimeOffset InsertedAt)
{
    public static ReceivedMessage From(string body, IReadOnlyDictionary<string, object?> data)
    {
        string? Text(string key) => data.TryGetValue(key, out var v) ? Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)?.Trim('"') : null;
        return new ReceivedMessage(Text("Id") ?? "", System.Text.Encoding.UTF8.GetBytes(body),
            int.TryParse(Text("DequeueCount"), System.Globalization.CultureInfo.InvariantCulture, out var count) ? count : 1,
            DateTimeOffset.TryParse(Text("InsertionTime"), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at) ? at : DateTimeOffset.MinValue);
    }
}
