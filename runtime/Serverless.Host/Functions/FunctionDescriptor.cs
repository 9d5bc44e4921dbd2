namespace Serverless.Host.Functions;

/// <summary>
/// One function as the worker indexed it: the metadata the host sends back in FunctionLoadRequest, and
/// its bindings parsed from the raw binding JSON (the same objects function.json would hold).
/// </summary>
internal sealed class FunctionDescriptor
{
    private FunctionDescriptor(string id, RpcFunctionMetadata metadata, IReadOnlyList<BindingDescriptor> bindings)
    {
        Id = id;
        Metadata = metadata;
        Bindings = bindings;
        Trigger = bindings.SingleOrDefault(b => b.IsTrigger);
    }

    public string Id { get; }
    public string Name => Metadata.Name;
    public RpcFunctionMetadata Metadata { get; }
    public IReadOnlyList<BindingDescriptor> Bindings { get; }
    public BindingDescriptor? Trigger { get; }

    // Input bindings the host fills on every invocation (a durableClient's JSON), set up before triggers run.
    private readonly List<(string Name, Func<TypedData> Value)> _hostInputs = [];

    /// <summary>Registers an input binding whose value the host supplies to every invocation of this function.</summary>
    public void AddHostInput(string bindingName, Func<TypedData> value) => _hostInputs.Add((bindingName, value));

    /// <summary>Adds the host-supplied input bindings (see <see cref="AddHostInput"/>) to an invocation.</summary>
    public void AddBindingInputs(InvocationRequest invocation)
    {
        foreach ((string name, Func<TypedData> value) in _hostInputs)
        {
            invocation.InputData.Add(new ParameterBinding { Name = name, Data = value() });
        }
    }

    /// <summary>
    /// Validates the worker's metadata and fills what the worker leaves to the host: the function id,
    /// the directory, and the typed binding map when only raw bindings came.
    /// </summary>
    public static FunctionDescriptor From(RpcFunctionMetadata metadata, string appDirectory)
    {
        if (string.IsNullOrWhiteSpace(metadata.Name))
        {
            throw new HostStartException("the worker indexed a function without a name");
        }
        var bindings = new List<BindingDescriptor>(metadata.RawBindings.Count);
        foreach (string raw in metadata.RawBindings)
        {
            bindings.Add(BindingDescriptor.Parse(metadata.Name, raw));
        }
        if (bindings.Count(b => b.IsTrigger) != 1)
        {
            throw new HostStartException($"function {metadata.Name}: exactly one trigger binding is required");
        }

        RpcFunctionMetadata loaded = metadata.Clone();
        if (string.IsNullOrEmpty(loaded.FunctionId))
        {
            loaded.FunctionId = Guid.NewGuid().ToString();
        }
        if (string.IsNullOrEmpty(loaded.Directory))
        {
            loaded.Directory = appDirectory;
        }
        if (loaded.Bindings.Count == 0)
        {
            foreach (BindingDescriptor binding in bindings)
            {
                loaded.Bindings[binding.Name] = binding.ToBindingInfo();
            }
        }
        return new FunctionDescriptor(loaded.FunctionId, loaded, bindings);
    }

    /// <summary>The Sdk's functions.metadata, for a worker that answers use_default_metadata_indexing.</summary>
    public static IReadOnlyList<RpcFunctionMetadata> ReadMetadataFile(string appDirectory)
    {
        string path = Path.Combine(appDirectory, "functions.metadata");
        if (!File.Exists(path))
        {
            throw new HostStartException($"{appDirectory}: the worker did not index its functions and there is no functions.metadata");
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(File.ReadAllText(path));
            var result = new List<RpcFunctionMetadata>();
            foreach (JsonElement function in document.RootElement.EnumerateArray())
            {
                var metadata = new RpcFunctionMetadata
                {
                    Name = function.GetProperty("name").GetString() ?? string.Empty,
                    ScriptFile = function.TryGetProperty("scriptFile", out var script) ? script.GetString() ?? string.Empty : string.Empty,
                    EntryPoint = function.TryGetProperty("entryPoint", out var entry) ? entry.GetString() ?? string.Empty : string.Empty,
                    Language = function.TryGetProperty("language", out var language) ? language.GetString() ?? string.Empty : string.Empty,
                    Directory = appDirectory,
                };
                foreach (JsonElement binding in function.GetProperty("bindings").EnumerateArray())
                {
                    metadata.RawBindings.Add(binding.GetRawText());
                }
                result.Add(metadata);
            }
            return result;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new HostStartException($"functions.metadata: {e.Message}");
        }
    }
}

/// <summary>One binding of a function, from its raw JSON.</summary>
internal sealed class BindingDescriptor
{
    private readonly JsonElement _json;

    private BindingDescriptor(string name, string type, BindingInfo.Types.Direction direction, JsonElement json)
    {
        Name = name;
        Type = type;
        Direction = direction;
        _json = json;
    }

    public string Name { get; }
    public string Type { get; }
    public BindingInfo.Types.Direction Direction { get; }
    public bool IsTrigger => Direction == BindingInfo.Types.Direction.In && Type.EndsWith("Trigger", StringComparison.OrdinalIgnoreCase);

    public static BindingDescriptor Parse(string functionName, string raw)
    {
        JsonElement json;
        try
        {
            json = JsonDocument.Parse(raw).RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new HostStartException($"function {functionName}: a binding is not JSON ({e.Message})");
        }
        string? name = GetString(json, "name");
        string? type = GetString(json, "type");
        string? direction = GetString(json, "direction");
        if (name is null || type is null || direction is null
            || !Enum.TryParse(direction, ignoreCase: true, out BindingInfo.Types.Direction parsed))
        {
            throw new HostStartException($"function {functionName}: every binding needs a name, a type and a direction (in, out, inout)");
        }
        return new BindingDescriptor(name, type, parsed, json);
    }

    /// <summary>A string setting of the binding, by case-insensitive name (function.json is not case-strict).</summary>
    public string? GetString(string property) => GetString(_json, property);

    /// <summary>A boolean setting (true/false, or its string form, as function.json allows); null when absent.</summary>
    public bool? GetBoolean(string property) =>
        !JsonLookup.TryGet(_json, property, out JsonElement value) ? null
        : value.ValueKind == JsonValueKind.True ? true
        : value.ValueKind == JsonValueKind.False ? false
        : value.ValueKind == JsonValueKind.String && bool.TryParse(value.GetString(), out bool parsed) ? parsed
        : null;

    /// <summary>A string-array setting, e.g. an HTTP trigger's methods; null when absent.</summary>
    public IReadOnlyList<string>? GetStrings(string property)
    {
        if (!JsonLookup.TryGet(_json, property, out JsonElement value) || value.ValueKind != JsonValueKind.Array)
        {
            return null;
        }
        var result = new List<string>();
        foreach (JsonElement item in value.EnumerateArray())
        {
            if (item.GetString() is { Length: > 0 } s)
            {
                result.Add(s);
            }
        }
        return result;
    }

    public BindingInfo ToBindingInfo()
    {
        var info = new BindingInfo { Type = Type, Direction = Direction };
        if (GetString("dataType") is { } dataType && Enum.TryParse(dataType, ignoreCase: true, out BindingInfo.Types.DataType parsed))
        {
            info.DataType = parsed;
        }
        return info;
    }

    private static string? GetString(JsonElement json, string property) =>
        JsonLookup.TryGet(json, property, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
