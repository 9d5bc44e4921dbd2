using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace Serverless.Runtime.Hosting.HostJson;

/// <summary>host.json is invalid; the message starts with <c>host.json: &lt;key path&gt;: </c>.</summary>
public sealed class HostJsonException(string message) : Exception(message);

/// <summary>Collects validation failures of one host.json section; keys are relative to the section.</summary>
public sealed class HostJsonValidator
{
    private readonly string _sectionPath;
    private readonly List<string> _errors;

    internal HostJsonValidator(string sectionPath, List<string> errors)
    {
        _sectionPath = sectionPath;
        _errors = errors;
    }

    /// <summary>Records "host.json: &lt;section&gt;.&lt;key&gt;: &lt;message&gt;" unless <paramref name="condition"/> holds.</summary>
    public HostJsonValidator Require(bool condition, string key, string message)
    {
        if (!condition) _errors.Add($"host.json: {HostJsonBinder.Join(_sectionPath, key)}: {message}");
        return this;
    }
}

/// <summary>A section of host.json owned by a module: its key path, options type and validation.</summary>
internal sealed record HostJsonSectionRegistration(string Path, Type OptionsType, Action<object, HostJsonValidator>? Validate);

/// <summary>The parsed, validated host.json: every registered section bound to its options object.</summary>
internal sealed class HostJsonDocument
{
    private readonly Dictionary<string, object> _sections;

    private HostJsonDocument(Dictionary<string, object> sections) => _sections = sections;

    public T Get<T>(string path) where T : class => (T)_sections[path];

    /// <summary>
    /// Binds every registered section and rejects anything else: unknown keys, wrong types and failed
    /// validations, all reported (one per line) in a <see cref="HostJsonException"/>.
    /// </summary>
    public static HostJsonDocument Load(string? json, IReadOnlyList<HostJsonSectionRegistration> sections,
        IEnumerable<KeyValuePair<string, string>>? overrides = null)
    {
        var errors = new List<string>();
        if (overrides is not null && overrides.Any())
            json = ApplyOverrides(json, overrides);
        JsonElement root = default;
        var hasRoot = false;
        if (json is not null)
        {
            try
            {
                using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
                root = doc.RootElement.Clone();
                hasRoot = true;
            }
            catch (JsonException e)
            {
                throw new HostJsonException($"host.json: (document): not valid JSON: {e.Message}");
            }
            if (root.ValueKind != JsonValueKind.Object)
                throw new HostJsonException("host.json: (document): must be a JSON object");
            // Strings are decoded lazily: a lone surrogate escape ("\ud800") would surface as an
            // InvalidOperationException while binding (found by the fuzz suite).
            if (FirstInvalidString(root, "") is { } badPath)
                throw new HostJsonException($"host.json: {(badPath.Length == 0 ? "(document)" : badPath)}: a string is not valid Unicode");
        }

        var bound = new Dictionary<string, object>(StringComparer.OrdinalIgnoreCase);
        var rootOptions = new HostRootOptions();
        if (hasRoot)
        {
            foreach (var key in HostRootOptions.Keys)
            {
                if (TryGetPropertyIgnoreCase(root, key, out var value))
                {
                    using var one = JsonDocument.Parse($"{{\"{key}\": {value.GetRawText()}}}");
                    HostJsonBinder.BindObject(one.RootElement, rootOptions, "", errors);
                }
            }
        }
        HostRootOptions.Validate(rootOptions, new HostJsonValidator("", errors));
        bound[""] = rootOptions;
        foreach (var section in sections)
        {
            var options = Activator.CreateInstance(section.OptionsType)
                ?? throw new InvalidOperationException($"{section.OptionsType} needs a public parameterless constructor");
            if (hasRoot && TryNavigate(root, section.Path, out var element))
                HostJsonBinder.BindObject(element, options, section.Path, errors);
            section.Validate?.Invoke(options, new HostJsonValidator(section.Path, errors));
            bound[section.Path] = options;
        }

        if (hasRoot)
            FindUnknownKeys(root, "", sections, errors);

        if (errors.Count > 0)
            throw new HostJsonException(string.Join(Environment.NewLine, errors.Distinct()));
        return new HostJsonDocument(bound);
    }

    /// <summary>The dotted path of the first property name or string that does not decode to valid Unicode, or null.</summary>
    private static string? FirstInvalidString(JsonElement element, string path)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                try { element.GetString(); } catch (InvalidOperationException) { return path; }
                return null;
            case JsonValueKind.Array:
                var i = 0;
                foreach (var item in element.EnumerateArray())
                    if (FirstInvalidString(item, $"{path}[{i++}]") is { } bad) return bad;
                return null;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    string name;
                    try { name = property.Name; } catch (InvalidOperationException) { return path; }
                    if (FirstInvalidString(property.Value, path.Length == 0 ? name : $"{path}.{name}") is { } bad) return bad;
                }
                return null;
            default:
                return null;
        }
    }

    /// <summary>Environment variable prefix that overrides host.json keys, as in Azure Functions: <c>AzureFunctionsJobHost__extensions__queues__batchSize=8</c>.</summary>
    public const string OverridePrefix = "AzureFunctionsJobHost__";

    /// <summary>
    /// Writes each override (path "a__b__c" or "a:b:c") into the document; values that read as numbers or
    /// booleans become JSON numbers or booleans, everything else a string. Then the usual strict binding applies.
    /// </summary>
    private static string ApplyOverrides(string? json, IEnumerable<KeyValuePair<string, string>> overrides)
    {
        System.Text.Json.Nodes.JsonObject root;
        try
        {
            root = json is null
                ? new System.Text.Json.Nodes.JsonObject()
                : System.Text.Json.Nodes.JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }) as System.Text.Json.Nodes.JsonObject
                  ?? throw new HostJsonException("host.json: (document): must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new HostJsonException($"host.json: (document): not valid JSON: {e.Message}");
        }
        foreach (var (rawPath, value) in overrides)
        {
            var parts = rawPath.Split(["__", ":"], StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) continue;
            var node = root;
            for (var i = 0; i < parts.Length - 1; i++)
            {
                var existing = node.FirstOrDefault(p => string.Equals(p.Key, parts[i], StringComparison.OrdinalIgnoreCase));
                if (existing.Value is System.Text.Json.Nodes.JsonObject child)
                {
                    node = child;
                    continue;
                }
                var created = new System.Text.Json.Nodes.JsonObject();
                if (existing.Key is not null) node.Remove(existing.Key);
                node[existing.Key ?? parts[i]] = created;
                node = created;
            }
            var leaf = node.FirstOrDefault(p => string.Equals(p.Key, parts[^1], StringComparison.OrdinalIgnoreCase)).Key ?? parts[^1];
            node[leaf] = long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var l) ? System.Text.Json.Nodes.JsonValue.Create(l)
                : double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) && !value.Contains(':') ? System.Text.Json.Nodes.JsonValue.Create(d)
                : bool.TryParse(value, out var b) ? System.Text.Json.Nodes.JsonValue.Create(b)
                : System.Text.Json.Nodes.JsonValue.Create(value);
        }
        return root.ToJsonString();
    }

    private static bool TryNavigate(JsonElement root, string path, out JsonElement element)
    {
        element = root;
        foreach (var part in path.Split('.'))
        {
            if (element.ValueKind != JsonValueKind.Object || !TryGetPropertyIgnoreCase(element, part, out element))
                return false;
        }
        return true;
    }

    internal static bool TryGetPropertyIgnoreCase(JsonElement obj, string name, out JsonElement value)
    {
        foreach (var p in obj.EnumerateObject())
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                value = p.Value;
                return true;
            }
        }
        value = default;
        return false;
    }

    /// <summary>Walks the keys that lead to registered sections; anything off those paths is unknown.</summary>
    private static void FindUnknownKeys(JsonElement obj, string prefix, IReadOnlyList<HostJsonSectionRegistration> sections, List<string> errors)
    {
        foreach (var property in obj.EnumerateObject())
        {
            var path = HostJsonBinder.Join(prefix, property.Name);
            if (prefix.Length == 0 && HostRootOptions.Keys.Contains(property.Name, StringComparer.OrdinalIgnoreCase))
                continue;
            if (sections.Any(s => string.Equals(s.Path, path, StringComparison.OrdinalIgnoreCase)))
                continue; // bound (and checked) by its section
            var isAncestor = sections.Any(s => s.Path.StartsWith(path + ".", StringComparison.OrdinalIgnoreCase));
            if (!isAncestor)
            {
                errors.Add($"host.json: {path}: unknown key");
                continue;
            }
            if (property.Value.ValueKind != JsonValueKind.Object)
            {
                errors.Add($"host.json: {path}: must be an object");
                continue;
            }
            FindUnknownKeys(property.Value, path, sections, errors);
        }
    }
}

/// <summary>A strict JSON-to-options binder: every key must map to a settable property of a known type.</summary>
internal static class HostJsonBinder
{
    public static string Join(string prefix, string key) => prefix.Length == 0 ? key : key.Length == 0 ? prefix : prefix + "." + key;

    public static void BindObject(JsonElement element, object target, string path, List<string> errors)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            errors.Add($"host.json: {path}: must be an object");
            return;
        }
        var properties = target.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance);
        foreach (var json in element.EnumerateObject())
        {
            var keyPath = Join(path, json.Name);
            var property = properties.FirstOrDefault(p => string.Equals(p.Name, json.Name, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                errors.Add($"host.json: {keyPath}: unknown key");
                continue;
            }
            if (property.SetMethod is { IsPublic: true })
            {
                if (TryConvert(json.Value, property.PropertyType, keyPath, errors, out var value))
                    property.SetValue(target, value);
            }
            else if (property.GetValue(target) is { } nested && IsBindableObject(property.PropertyType))
            {
                BindObject(json.Value, nested, keyPath, errors);
            }
            else
            {
                errors.Add($"host.json: {keyPath}: unknown key");
            }
        }
    }

    private static bool IsBindableObject(Type type) => type.IsClass && type != typeof(string) && !typeof(System.Collections.IEnumerable).IsAssignableFrom(type);

    private static bool TryConvert(JsonElement value, Type type, string path, List<string> errors, out object? result)
    {
        result = null;
        var underlying = Nullable.GetUnderlyingType(type);
        if (underlying is not null)
        {
            if (value.ValueKind == JsonValueKind.Null) return true;
            type = underlying;
        }
        bool Fail(string message)
        {
            errors.Add($"host.json: {path}: {message}");
            return false;
        }

        if (type == typeof(string))
        {
            if (value.ValueKind != JsonValueKind.String) return Fail("must be a string");
            result = value.GetString();
            return true;
        }
        if (type == typeof(int))
        {
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var i)) return Fail("must be an integer");
            result = i;
            return true;
        }
        if (type == typeof(long))
        {
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out var l)) return Fail("must be an integer");
            result = l;
            return true;
        }
        if (type == typeof(double))
        {
            if (value.ValueKind != JsonValueKind.Number) return Fail("must be a number");
            result = value.GetDouble();
            return true;
        }
        if (type == typeof(bool))
        {
            if (value.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) return Fail("must be true or false");
            result = value.GetBoolean();
            return true;
        }
        if (type == typeof(TimeSpan))
        {
            if (value.ValueKind != JsonValueKind.String
                || !TimeSpan.TryParseExact(value.GetString(), ["c", "g"], CultureInfo.InvariantCulture, out var span)
                || !value.GetString()!.Contains(':'))
                return Fail("must be a time span \"hh:mm:ss\"");
            result = span;
            return true;
        }
        if (type.IsEnum)
        {
            if (value.ValueKind != JsonValueKind.String || !Enum.TryParse(type, value.GetString(), ignoreCase: true, out var e) || int.TryParse(value.GetString(), out _))
                return Fail($"must be one of {string.Join(", ", Enum.GetNames(type).Select(n => n.ToLowerInvariant()))}");
            result = e;
            return true;
        }
        if (type == typeof(Dictionary<string, string>))
        {
            if (value.ValueKind != JsonValueKind.Object) return Fail("must be an object of strings");
            var dict = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in value.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                {
                    errors.Add($"host.json: {Join(path, p.Name)}: must be a string");
                    continue;
                }
                dict[p.Name] = p.Value.GetString()!;
            }
            result = dict;
            return true;
        }
        if (type == typeof(string[]))
        {
            if (value.ValueKind != JsonValueKind.Array || value.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.String))
                return Fail("must be an array of strings");
            result = value.EnumerateArray().Select(v => v.GetString()!).ToArray();
            return true;
        }
        if (IsBindableObject(type) && type.GetConstructor(Type.EmptyTypes) is not null)
        {
            var nested = Activator.CreateInstance(type)!;
            BindObject(value, nested, path, errors);
            result = nested;
            return true;
        }
        return Fail($"unsupported option type {type.Name}");
    }
}

/// <summary>Registration of host.json sections by modules.</summary>
public static class HostJsonServiceCollectionExtensions
{
    /// <summary>
    /// Claims the host.json section at <paramref name="path"/> (dot-separated, e.g. <c>extensions.durableTask</c>)
    /// for <typeparamref name="TOptions"/>: keys bind case-insensitively to public settable properties
    /// (string, int, long, double, bool, TimeSpan "hh:mm:ss", enums by name, string arrays, string maps,
    /// nested option classes); unknown keys, wrong types and failed <paramref name="validate"/> checks
    /// stop the host at start. The bound options are available as <see cref="IOptions{TOptions}"/>
    /// (defaults when the section is absent).
    /// </summary>
    public static IServiceCollection AddHostJsonSection<TOptions>(this IServiceCollection services, string path,
        Action<TOptions, HostJsonValidator>? validate = null) where TOptions : class, new()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (services.Any(d => d.ServiceType == typeof(HostJsonSectionRegistration) && d.ImplementationInstance is HostJsonSectionRegistration r
                && string.Equals(r.Path, path, StringComparison.OrdinalIgnoreCase)))
            return services;
        services.AddSingleton(new HostJsonSectionRegistration(path, typeof(TOptions),
            validate is null ? null : (o, v) => validate((TOptions)o, v)));
        services.AddSingleton<IOptions<TOptions>>(sp => Options.Create(sp.GetRequiredService<HostJsonDocument>().Get<TOptions>(path)));
        return services;
    }
}
