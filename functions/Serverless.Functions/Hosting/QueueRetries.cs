namespace Serverless.Functions.Hosting;

/// <summary>
/// How many times the Functions host delivers a queue message before it moves it to <c>&lt;queue&gt;-poison</c>:
/// host.json's <c>extensions.queues.maxDequeueCount</c>, or the app setting that overrides it
/// (<c>AzureFunctionsJobHost__extensions__queues__maxDequeueCount</c>); 5, the host's default, when neither is set.
/// A function that must not let the host poison a message as it is (it holds a credential) reads this to
/// know its last attempt.
/// </summary>
public static class QueueRetries
{
    public const int HostDefault = 5;

    private const string OverrideSetting = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount";

    public static int MaxDequeueCount(string appDirectory)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable(OverrideSetting), System.Globalization.CultureInfo.InvariantCulture, out int set) && set > 0)
            return set;
        string path = Path.Combine(appDirectory, "host.json");
        if (!File.Exists(path)) return HostDefault;
        try
        {
            using JsonDocument host = JsonDocument.Parse(File.ReadAllText(path),
                new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            return host.RootElement.TryGetProperty("extensions", out JsonElement extensions)
                && extensions.TryGetProperty("queues", out JsonElement queues)
                && queues.TryGetProperty("maxDequeueCount", out JsonElement count)
                && count.TryGetInt32(out int value) && value > 0
                ? value
                : HostDefault;
        }
        catch (JsonException)
        {
            // The host refuses to start on a host.json it cannot read, so this is never reached in a running app.
            return HostDefault;
        }
    }
}
