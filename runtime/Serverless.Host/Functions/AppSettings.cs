namespace Serverless.Host.Functions;

/// <summary>
/// App settings, as Core Tools gives them to a local app: the host's explicit settings first, then the
/// <c>Values</c> of the app's local.settings.json, then the environment. They resolve <c>%NAME%</c>
/// binding expressions and connection names, and the worker gets them in its environment.
/// </summary>
internal sealed class AppSettings
{
    private readonly Dictionary<string, string> _values;

    private AppSettings(Dictionary<string, string> values) => _values = values;

    /// <summary>The settings that are not plain environment variables (they go into the worker's environment).</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    public static AppSettings Load(string appDirectory, IReadOnlyDictionary<string, string>? explicitSettings)
    {
        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        string path = Path.Combine(appDirectory, "local.settings.json");
        if (File.Exists(path))
        {
            try
            {
                using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path),
                    new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
                if (document.RootElement.ValueKind == JsonValueKind.Object
                    && document.RootElement.TryGetProperty("Values", out JsonElement section) && section.ValueKind == JsonValueKind.Object)
                {
                    foreach (JsonProperty setting in section.EnumerateObject())
                    {
                        values[setting.Name] = setting.Value.ValueKind == JsonValueKind.String ? setting.Value.GetString()! : setting.Value.GetRawText();
                    }
                }
            }
            catch (JsonException e)
            {
                // The position, not the content: the file may hold connection strings.
                throw new HostStartException($"local.settings.json: not valid JSON (line {e.LineNumber + 1})");
            }
        }
        foreach ((string name, string value) in explicitSettings ?? new Dictionary<string, string>())
        {
            values[name] = value;
        }
        return new AppSettings(values);
    }

    /// <summary>A setting's value, or null when it is set nowhere.</summary>
    public string? Get(string name) =>
        _values.TryGetValue(name, out string? value) ? value : Environment.GetEnvironmentVariable(name);

    /// <summary>
    /// A binding value with <c>%NAME%</c> expressions replaced by settings (as the Functions host resolves them);
    /// a setting that is not set is a start error naming the setting, never its value.
    /// </summary>
    public string? Resolve(string functionName, string? value)
    {
        if (value is null || !value.Contains('%'))
        {
            return value;
        }
        var result = new System.Text.StringBuilder(value.Length);
        int i = 0;
        while (i < value.Length)
        {
            int open = value.IndexOf('%', i);
            if (open < 0)
            {
                result.Append(value, i, value.Length - i);
                break;
            }
            int close = value.IndexOf('%', open + 1);
            if (close < 0)
            {
                throw new HostStartException($"function {functionName}: '{value}' has an unclosed %SETTING% expression");
            }
            string name = value[(open + 1)..close];
            result.Append(value, i, open - i);
            result.Append(Get(name) ?? throw new HostStartException($"function {functionName}: the app setting '{name}' is not set"));
            i = close + 1;
        }
        return result.ToString();
    }
}
