using System.Text.Json.Serialization;

namespace Serverless.Host.Durable;

/// <summary>
/// The value of a <c>durableClient</c> input binding: the JSON string the worker's DurableTaskClientConverter
/// reads (the same keys the Durable Functions extension sends). <c>rpcBaseUrl</c> is the host's
/// TaskHubSidecarService; <c>httpBaseUrl</c> and <c>requiredQueryStringParameters</c> are what
/// CreateCheckStatusResponse builds its management URLs from.
/// </summary>
internal sealed class DurableClientBinding
{
    internal const string BindingType = "durableClient";

    /// <summary>The name under which the Functions host keeps the extension's system key.</summary>
    internal const string SystemKeyName = "durabletask_extension";

    public required string TaskHubName { get; init; }
    public required Uri RpcBaseUrl { get; init; }
    public required string SystemKey { get; init; }

    /// <summary>The HTTP address (known once the HTTP server listens).</summary>
    public Uri? HttpAddress { get; set; }

    /// <summary>
    /// The system key of the durable webhooks, derived from the master key (HMAC-SHA256 over the key's name),
    /// so it is stable across restarts without another secret on disk and says nothing about the master key.
    /// </summary>
    public static string DeriveSystemKey(Serverless.Host.Http.FunctionKeys keys)
    {
        byte[] mac = keys.DeriveKey(SystemKeyName);
        return Convert.ToBase64String(mac).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    public string QueryString =>
        $"taskHub={Uri.EscapeDataString(TaskHubName)}&connection=Storage&code={Uri.EscapeDataString(SystemKey)}";

    public string ToJson() => JsonSerializer.Serialize(new ClientBindingPayload(
        RpcBaseUrl.ToString(),
        TaskHubName,
        "Storage",
        QueryString,
        HttpAddress is null ? null : new Uri(HttpAddress, DurableHttpApi.BasePath).ToString(),
        int.MaxValue,
        // The converter reads this as a JSON-encoded TimeSpan inside a string.
        JsonSerializer.Serialize(TimeSpan.FromSeconds(100), DurableJson.Default.TimeSpan)), DurableJson.Default.ClientBindingPayload);
}

internal sealed record ClientBindingPayload(
    [property: JsonPropertyName("rpcBaseUrl")] string RpcBaseUrl,
    [property: JsonPropertyName("taskHubName")] string TaskHubName,
    [property: JsonPropertyName("connectionName")] string ConnectionName,
    [property: JsonPropertyName("requiredQueryStringParameters")] string RequiredQueryStringParameters,
    [property: JsonPropertyName("httpBaseUrl")] string? HttpBaseUrl,
    [property: JsonPropertyName("maxGrpcMessageSizeInBytes")] int MaxGrpcMessageSizeInBytes,
    [property: JsonPropertyName("grpcHttpClientTimeout")] string GrpcHttpClientTimeout);

/// <summary>The status payload of the HTTP management API (the Functions host's StatusResponsePayload).</summary>
internal sealed record StatusPayload(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("instanceId")] string InstanceId,
    [property: JsonPropertyName("runtimeStatus")] string RuntimeStatus,
    [property: JsonPropertyName("input")] JsonElement? Input,
    [property: JsonPropertyName("customStatus")] JsonElement? CustomStatus,
    [property: JsonPropertyName("output")] JsonElement? Output,
    [property: JsonPropertyName("createdTime")] string CreatedTime,
    [property: JsonPropertyName("lastUpdatedTime")] string LastUpdatedTime);

internal sealed record PurgePayload([property: JsonPropertyName("instancesDeleted")] int InstancesDeleted);

[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(TimeSpan))]
[JsonSerializable(typeof(ClientBindingPayload))]
[JsonSerializable(typeof(StatusPayload))]
[JsonSerializable(typeof(PurgePayload))]
internal sealed partial class DurableJson : JsonSerializerContext;
