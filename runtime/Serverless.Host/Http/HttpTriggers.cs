using System.Diagnostics;
using System.Text;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Extensions;
using Microsoft.AspNetCore.Routing;
using Serverless.Host.Queues;

namespace Serverless.Host.Http;

/// <summary>
/// HTTP triggers: each function's route (under host.json's routePrefix, default "api") is an ASP.NET Core
/// endpoint that checks the function's authLevel. Then, as the worker chose at start-up: over RpcHttp, the
/// request becomes an InvocationRequest whose trigger input is the RpcHttp message and the worker's RpcHttp
/// reply becomes the response; with the ASP.NET Core integration (the worker reported HttpUri),
/// <see cref="ProxiedHttpInvoker"/> forwards the request to the worker's own Kestrel.
/// </summary>
internal sealed class HttpTriggers(WorkerChannel channel, FunctionKeys keys, IQueueStore? queues, ILogger log, ProxiedHttpInvoker? proxied = null)
{
    /// <summary>The query parameter and header that carry a function key, as the Functions host reads them.</summary>
    internal const string KeyQueryName = "code";
    internal const string KeyHeaderName = "x-functions-key";

    private static readonly string[] AllMethods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"];

    public void Map(IEndpointRouteBuilder routes, FunctionDescriptor function, BindingDescriptor trigger, string routePrefix)
    {
        string route = trigger.GetString("route") is { Length: > 0 } r ? r : function.Name;
        string pattern = routePrefix.Length == 0 ? route : routePrefix.TrimEnd('/') + "/" + route.TrimStart('/');
        IReadOnlyList<string>? methods = trigger.GetStrings("methods");
        string[] verbs = methods is { Count: > 0 } ? methods.Select(m => m.ToUpperInvariant()).ToArray() : AllMethods;
        AuthLevel level = ParseAuthLevel(function.Name, trigger.GetString("authLevel"));

        routes.MapMethods("/" + pattern, verbs, context => InvokeAsync(context, function, trigger.Name, level))
            .WithDisplayName(function.Name)
            .WithMetadata(new FunctionEndpoint(function.Name));
        Logs.HttpRoute(log, function.Name, string.Join(",", verbs), "/" + pattern);
    }

    private async Task InvokeAsync(HttpContext context, FunctionDescriptor function, string triggerName, AuthLevel level)
    {
        HttpRequest request = context.Request;
        string? presented = request.Query.TryGetValue(KeyQueryName, out var code) ? code.ToString()
            : request.Headers.TryGetValue(KeyHeaderName, out var header) ? header.ToString() : null;
        if (!keys.Allows(level, function.Name, presented))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return;
        }
        if (request.ContentLength is { } length && HostProblems.Limit(context) is { } limit && length > limit)
        {
            // Refused before a byte is read (and before a 100 Continue goes out).
            await HostProblems.TooLargeAsync(context, limit);
            return;
        }
        if (proxied is not null)
        {
            await proxied.InvokeAsync(context, function, BuildInvocation(context, function, triggerName, Guid.NewGuid().ToString(), body: null));
            return;
        }

        byte[] body;
        using (var buffer = new MemoryStream())
        {
            try
            {
                // Bounded by Kestrel's MaxRequestBodySize (the host's limit): a longer body throws here.
                await request.Body.CopyToAsync(buffer, context.RequestAborted);
            }
            catch (BadHttpRequestException e) when (HostProblems.IsTooLarge(e))
            {
                await HostProblems.TooLargeAsync(context, HostProblems.Limit(context) ?? 0);
                return;
            }
            body = buffer.ToArray();
        }

        string invocationId = Guid.NewGuid().ToString();
        InvocationRequest invocation = BuildInvocation(context, function, triggerName, invocationId, body);
        StreamingMessage reply;
        try
        {
            reply = await channel.SendAsync(
                CorrelationKeys.Invocation(invocationId),
                new StreamingMessage { RequestId = invocationId, InvocationRequest = invocation },
                context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            channel.Post(new StreamingMessage { InvocationCancel = new InvocationCancel { InvocationId = invocationId } });
            return;
        }
        catch (WorkerUnavailableException)
        {
            await HostProblems.WorkerUnavailableAsync(context);
            return;
        }

        InvocationResponse response = reply.InvocationResponse;
        if (response.Result?.Status != StatusResult.Types.Status.Success)
        {
            // Only the exception's type is logged: its message may carry data from the request.
            Logs.InvocationFailed(log, function.Name, invocationId, response.Result?.Exception?.Type is { Length: > 0 } t ? t : "failure");
            context.Response.StatusCode = StatusCodes.Status500InternalServerError;
            return;
        }
        await QueueOutputs.WriteAsync(function, response, queues, CancellationToken.None);
        await WriteResponseAsync(context, FindHttpResult(response));
    }

    /// <summary>
    /// The invocation for one request. With <paramref name="body"/> null (the ASP.NET Core integration) the
    /// trigger input is an empty RpcHttp, as the Functions host sends a proxying worker: the request itself
    /// goes over HTTP. Route values, Query and Headers are trigger metadata either way.
    /// </summary>
    private static InvocationRequest BuildInvocation(HttpContext context, FunctionDescriptor function, string triggerName, string invocationId, byte[]? body)
    {
        HttpRequest request = context.Request;
        bool full = body is not null;
        var http = full
            ? new RpcHttp
            {
                Method = request.Method,
                Url = request.GetEncodedUrl(),
                Body = new TypedData { Bytes = ByteString.CopyFrom(body) },
                RawBody = new TypedData { Bytes = ByteString.CopyFrom(body) },
            }
            : new RpcHttp();
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach ((string name, var values) in request.Headers)
        {
            if (!name.Equals(ClientCertificateHeader.Name, StringComparison.OrdinalIgnoreCase))
            {
                AddHeader(name, values.ToString());
            }
        }
        if (ClientCertificateHeader.ValueOf(context) is { } certificate)
        {
            AddHeader(ClientCertificateHeader.Name, certificate);
        }
        void AddHeader(string name, string value)
        {
            if (full)
            {
                http.Headers[name.ToLowerInvariant()] = value;
                http.NullableHeaders[name.ToLowerInvariant()] = new NullableString { Value = value };
            }
            headers[name] = value;
        }
        var query = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((string name, var values) in request.Query)
        {
            string value = values.ToString();
            if (full)
            {
                http.Query[name] = value;
                http.NullableQuery[name] = new NullableString { Value = value };
            }
            query[name] = value;
        }

        var invocation = new InvocationRequest
        {
            InvocationId = invocationId,
            FunctionId = function.Id,
            TraceContext = new RpcTraceContext { TraceParent = Activity.Current?.Id ?? string.Empty, TraceState = Activity.Current?.TraceStateString ?? string.Empty },
        };
        // Route values are trigger metadata (binding data): that is how the worker binds `string category`.
        foreach ((string name, object? value) in request.RouteValues)
        {
            if (value is null)
            {
                continue;
            }
            string text = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
            if (full)
            {
                http.Params[name] = text;
                http.NullableParams[name] = new NullableString { Value = text };
            }
            invocation.TriggerMetadata[name] = new TypedData { String = text };
        }
        invocation.TriggerMetadata["Query"] = new TypedData { Json = JsonSerializer.Serialize(query, StringMapJson.Default.DictionaryStringString) };
        invocation.TriggerMetadata["Headers"] = new TypedData { Json = JsonSerializer.Serialize(headers, StringMapJson.Default.DictionaryStringString) };
        invocation.InputData.Add(new ParameterBinding { Name = triggerName, Data = new TypedData { Http = http } });
        function.AddBindingInputs(invocation);
        return invocation;
    }

    /// <summary>The function's HTTP result: its return value, or the "$return" (or any) http output binding.</summary>
    private static RpcHttp? FindHttpResult(InvocationResponse response)
    {
        if (response.ReturnValue?.DataCase == TypedData.DataOneofCase.Http)
        {
            return response.ReturnValue.Http;
        }
        RpcHttp? any = null;
        foreach (ParameterBinding output in response.OutputData)
        {
            if (output.Data?.DataCase != TypedData.DataOneofCase.Http)
            {
                continue;
            }
            if (output.Name == "$return")
            {
                return output.Data.Http;
            }
            any ??= output.Data.Http;
        }
        return any;
    }

    private static async Task WriteResponseAsync(HttpContext context, RpcHttp? http)
    {
        HttpResponse response = context.Response;
        if (http is null)
        {
            // A function that returns nothing: the Functions host answers 204.
            response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }
        response.StatusCode = int.TryParse(http.StatusCode, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int status)
            && status is >= 100 and <= 599 ? status : StatusCodes.Status200OK;
        foreach ((string name, string value) in http.Headers)
        {
            // The host frames the body itself.
            if (name.Equals("content-length", StringComparison.OrdinalIgnoreCase) || name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            response.Headers[name] = value;
        }
        ReadOnlyMemory<byte> body = http.Body?.DataCase switch
        {
            TypedData.DataOneofCase.Bytes => http.Body.Bytes.Memory,
            TypedData.DataOneofCase.Stream => http.Body.Stream.Memory,
            TypedData.DataOneofCase.String => Encoding.UTF8.GetBytes(http.Body.String),
            TypedData.DataOneofCase.Json => Encoding.UTF8.GetBytes(http.Body.Json),
            _ => ReadOnlyMemory<byte>.Empty,
        };
        if (http.Body?.DataCase == TypedData.DataOneofCase.Json && response.ContentType is null)
        {
            response.ContentType = "application/json";
        }
        if (!body.IsEmpty && response.StatusCode != StatusCodes.Status204NoContent && response.StatusCode != StatusCodes.Status304NotModified)
        {
            response.ContentLength = body.Length;
            await response.Body.WriteAsync(body, context.RequestAborted);
        }
    }

    private static AuthLevel ParseAuthLevel(string function, string? value) => value?.ToLowerInvariant() switch
    {
        null or "function" => AuthLevel.Function,
        "anonymous" => AuthLevel.Anonymous,
        "admin" or "system" => AuthLevel.Admin,
        _ => throw new HostStartException($"function {function}: authLevel '{value}' is not anonymous, function or admin"),
    };
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class StringMapJson : System.Text.Json.Serialization.JsonSerializerContext;
