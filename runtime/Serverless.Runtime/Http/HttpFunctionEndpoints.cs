using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Serverless.Runtime.Functions;

namespace Serverless.Runtime.Http;

/// <summary>Maps every HTTP-triggered function to an endpoint under /api/ and turns results and errors into responses.</summary>
internal static class HttpFunctionEndpoints
{
    public static void MapHttpFunctions(this IEndpointRouteBuilder endpoints, IFunctionCatalog catalog)
    {
        var executor = (FunctionExecutor)endpoints.ServiceProvider.GetRequiredService<IFunctionExecutor>();
        var logger = endpoints.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger("Serverless.Runtime.Http");
        foreach (var function in catalog.Functions)
        {
            if (function.Trigger is not HttpTriggerAttribute) continue;
            RequestDelegate handler = context => HandleAsync(context, function, executor, logger);
            var builder = function.HttpMethods.Count == 0
                ? endpoints.Map(function.Route!, handler)
                : endpoints.MapMethods(function.Route!, function.HttpMethods, handler);
            builder.WithName(function.Name).WithMetadata(function);
        }
    }

    private static async Task HandleAsync(HttpContext http, FunctionDefinition function, FunctionExecutor executor, ILogger logger)
    {
        var bindingData = new HttpBindingData(http.Request);
        object? result;
        try
        {
            result = await executor.ExecuteCoreAsync(function, http, http, bindingData, http.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            return; // the client went away
        }
        catch (FunctionBindingException e)
        {
            await WriteProblemAsync(http, StatusCodes.Status400BadRequest, "The request is invalid.", e.Message).ConfigureAwait(false);
            return;
        }
        catch (FunctionTimeoutException e)
        {
            logger.LogError(e, "Function {Function} timed out", function.Name);
            await WriteProblemAsync(http, StatusCodes.Status504GatewayTimeout, "The function timed out.", null).ConfigureAwait(false);
            return;
        }
        catch (Exception e)
        {
            // The details (and stack) go to the log under the trace id; the client gets only the id.
            logger.LogError(e, "Function {Function} failed (trace {TraceId})", function.Name, System.Diagnostics.Activity.Current?.Id ?? http.TraceIdentifier);
            await WriteProblemAsync(http, StatusCodes.Status500InternalServerError, "An error occurred while executing the function.", null).ConfigureAwait(false);
            return;
        }
        await WriteResultAsync(http, result).ConfigureAwait(false);
    }

    internal static async Task WriteProblemAsync(HttpContext http, int status, string title, string? detail)
    {
        if (http.Response.HasStarted)
        {
            http.Abort();
            return;
        }
        http.Response.Clear();
        // ProblemDetails adds the traceId (the one logged with the error), never exception details.
        await Results.Problem(detail: detail, statusCode: status, title: title).ExecuteAsync(http).ConfigureAwait(false);
    }

    private static Task WriteResultAsync(HttpContext http, object? result) => result switch
    {
        null => Task.CompletedTask,
        IResult r => r.ExecuteAsync(http),
        string s => Results.Text(s, "text/plain; charset=utf-8").ExecuteAsync(http),
        byte[] bytes => Results.Bytes(bytes, "application/octet-stream").ExecuteAsync(http),
        Stream stream => Results.Stream(stream, "application/octet-stream").ExecuteAsync(http),
        _ => Results.Json(result, (System.Text.Json.JsonSerializerOptions?)null).ExecuteAsync(http),
    };

    /// <summary>Route values, then query values, looked up on demand (most functions bind none, so nothing is copied).</summary>
    private sealed class HttpBindingData(HttpRequest request) : IReadOnlyDictionary<string, object?>
    {
        public object? this[string key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException(key);

        public bool TryGetValue(string key, out object? value)
        {
            if (request.RouteValues.TryGetValue(key, out value)) return true;
            if (request.Query.TryGetValue(key, out var query))
            {
                value = query.Count == 1 ? query[0] : query.ToString();
                return true;
            }
            value = null;
            return false;
        }

        public bool ContainsKey(string key) => TryGetValue(key, out _);

        private IEnumerable<KeyValuePair<string, object?>> All()
        {
            foreach (var (key, value) in request.RouteValues) yield return new(key, value);
            foreach (var (key, value) in request.Query)
                if (!request.RouteValues.ContainsKey(key)) yield return new(key, value.Count == 1 ? value[0] : value.ToString());
        }

        public IEnumerable<string> Keys => All().Select(p => p.Key);
        public IEnumerable<object?> Values => All().Select(p => p.Value);
        public int Count => All().Count();
        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => All().GetEnumerator();
        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
