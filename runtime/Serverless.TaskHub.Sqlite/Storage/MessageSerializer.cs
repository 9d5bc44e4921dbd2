using Newtonsoft.Json;
using Newtonsoft.Json.Serialization;

namespace Serverless.TaskHub.Sqlite.Storage;

/// <summary>
/// JSON for history events, task messages and instance states, as DurableTask.Core's own types
/// (Newtonsoft, which honours their data contracts). The concrete event type travels as
/// <c>$type</c>, and the binder resolves only DurableTask.Core's own types, so a tampered file
/// cannot make the reader instantiate anything else.
/// </summary>
internal static class MessageSerializer
{
    private static readonly JsonSerializerSettings Settings = new()
    {
        TypeNameHandling = TypeNameHandling.Auto,
        SerializationBinder = new DurableTaskTypesOnlyBinder(),
        DateParseHandling = DateParseHandling.None,
        ConstructorHandling = ConstructorHandling.AllowNonPublicDefaultConstructor,
        NullValueHandling = NullValueHandling.Ignore,
        MaxDepth = 64,
    };

    private static readonly JsonSerializer Serializer = JsonSerializer.Create(Settings);

    public static string Serialize(HistoryEvent e) => JsonConvert.SerializeObject(e, typeof(HistoryEvent), Settings);

    public static string Serialize(TaskMessage m) => JsonConvert.SerializeObject(m, typeof(TaskMessage), Settings);

    public static string Serialize(OrchestrationState s) => JsonConvert.SerializeObject(s, typeof(OrchestrationState), Settings);

    public static string SerializeHistory(IEnumerable<HistoryEvent> events) => JsonConvert.SerializeObject(events, typeof(IEnumerable<HistoryEvent>), Settings);

    public static HistoryEvent DeserializeEvent(string json) => Read<HistoryEvent>(json);

    public static TaskMessage DeserializeMessage(string json)
    {
        var m = Read<TaskMessage>(json);
        if (m.Event is null || string.IsNullOrEmpty(m.OrchestrationInstance?.InstanceId))
            throw new InvalidDataException("A stored task message has no event or no instance.");
        return m;
    }

    public static OrchestrationState DeserializeState(string json) => Read<OrchestrationState>(json);

    private static T Read<T>(string json) where T : class
    {
        using var reader = new JsonTextReader(new StringReader(json));
        return Serializer.Deserialize<T>(reader) ?? throw new InvalidDataException($"A stored {typeof(T).Name} was null.");
    }

    /// <summary>Resolves DurableTask.Core's data types and the two dictionaries they declare as interfaces; nothing else.</summary>
    private sealed class DurableTaskTypesOnlyBinder : ISerializationBinder
    {
        private static readonly System.Reflection.Assembly Core = typeof(HistoryEvent).Assembly;
        private readonly DefaultSerializationBinder _inner = new();
        private readonly Dictionary<(string?, string?), Type> _dictionaries = [];

        public DurableTaskTypesOnlyBinder()
        {
            foreach (var t in new[] { typeof(Dictionary<string, string>), typeof(Dictionary<string, object>) })
            {
                _inner.BindToName(t, out var assembly, out var name);
                _dictionaries[(assembly, name)] = t;
            }
        }

        public Type BindToType(string? assemblyName, string typeName)
        {
            if (_dictionaries.TryGetValue((assemblyName, typeName), out var dictionary)) return dictionary;
            var type = Core.GetType(typeName, throwOnError: false);
            if (type is null || type.IsAbstract || type.Namespace?.StartsWith("DurableTask.Core", StringComparison.Ordinal) != true)
                throw new JsonSerializationException("A stored record names a type that is not one of DurableTask.Core's data types.");
            return type;
        }

        public void BindToName(Type serializedType, out string? assemblyName, out string? typeName) =>
            _inner.BindToName(serializedType, out assemblyName, out typeName);
    }
}
