using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using System.Security.Claims;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Timers;

namespace Serverless.Runtime.Functions;

/// <summary>How one parameter gets its value on each invocation; chosen once, while indexing.</summary>
internal abstract class ParameterBinding
{
    public abstract ValueTask<object?> BindAsync(FunctionContext context);

    public static ParameterBinding? Create(FunctionDefinition function, ParameterInfo parameter, IFunctionParameterBinder[] binders,
        IServiceProviderIsService isService, ref bool bodySeen)
    {
        foreach (var binder in binders)
            if (binder.CanBind(function, parameter)) return new Custom(binder, parameter);

        var type = parameter.ParameterType;
        if (type == typeof(FunctionContext)) return new Delegated(c => c);
        if (type == typeof(CancellationToken)) return new Delegated(c => c.CancellationToken);
        if (type == typeof(ILogger)) return new Delegated(c => c.Logger);

        var isTrigger = parameter == function.TriggerParameter || parameter.Position == function.TriggerParameter.Position;
        if (isTrigger)
        {
            return function.Trigger switch
            {
                HttpTriggerAttribute when type == typeof(HttpRequest) => new Delegated(c => c.HttpContext!.Request),
                HttpTriggerAttribute when type == typeof(HttpContext) => new Delegated(c => c.HttpContext),
                TimerTriggerAttribute when type == typeof(TimerInfo) => new Delegated(c => c.TriggerPayload),
                QueueTriggerAttribute => QueuePayload.Create(type, parameter.Name!),
                _ => null,
            };
        }
        if (parameter.GetCustomAttribute<InputBindingAttribute>() is not null || parameter.GetCustomAttribute<TriggerBindingAttribute>() is not null)
            return null;

        if (function.Trigger is HttpTriggerAttribute)
        {
            if (type == typeof(HttpContext)) return new Delegated(c => c.HttpContext);
            if (type == typeof(HttpRequest)) return new Delegated(c => c.HttpContext!.Request);
            if (type == typeof(HttpResponse)) return new Delegated(c => c.HttpContext!.Response);
            if (type == typeof(ClaimsPrincipal)) return new Delegated(c => c.HttpContext!.User);
        }
        if (SimpleValue.IsSimple(type))
            return new SimpleValue(parameter, function.Trigger is HttpTriggerAttribute);
        if (isService.IsService(type))
            return new Service(type);
        if (function.Trigger is HttpTriggerAttribute && !bodySeen && type.IsClass || function.Trigger is HttpTriggerAttribute && !bodySeen && type.IsValueType)
        {
            bodySeen = true;
            return new JsonBody(parameter);
        }
        return null;
    }

    private sealed class Custom(IFunctionParameterBinder binder, ParameterInfo parameter) : ParameterBinding
    {
        public override ValueTask<object?> BindAsync(FunctionContext context) => binder.BindAsync(context, parameter);
    }

    private sealed class Delegated(Func<FunctionContext, object?> bind) : ParameterBinding
    {
        public override ValueTask<object?> BindAsync(FunctionContext context) => ValueTask.FromResult(bind(context));
    }

    private sealed class Service(Type type) : ParameterBinding
    {
        public override ValueTask<object?> BindAsync(FunctionContext context) => ValueTask.FromResult<object?>(context.InstanceServices.GetRequiredService(type));
    }

    /// <summary>Strings, numbers, Guid, dates, enums, anything IParsable: from binding data (route, query, queue metadata) by name.</summary>
    private sealed class SimpleValue(ParameterInfo parameter, bool fromHttp) : ParameterBinding
    {
        private readonly Type _type = Nullable.GetUnderlyingType(parameter.ParameterType) ?? parameter.ParameterType;
        private readonly bool _nullable = !parameter.ParameterType.IsValueType || Nullable.GetUnderlyingType(parameter.ParameterType) is not null;

        public static bool IsSimple(Type type)
        {
            type = Nullable.GetUnderlyingType(type) ?? type;
            return type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(Guid)
                || type == typeof(DateTime) || type == typeof(DateTimeOffset) || type == typeof(TimeSpan) || type == typeof(DateOnly);
        }

        public override ValueTask<object?> BindAsync(FunctionContext context)
        {
            // Binding data dictionaries are case-insensitive (HTTP) or use the documented casing (queue, timer).
            var found = context.BindingData.TryGetValue(parameter.Name!, out var raw) && raw is not null;
            if (!found)
            {
                foreach (var (key, value) in context.BindingData)
                {
                    if (string.Equals(key, parameter.Name, StringComparison.OrdinalIgnoreCase))
                    {
                        raw = value;
                        found = value is not null;
                        break;
                    }
                }
            }
            if (!found)
            {
                if (parameter.HasDefaultValue) return ValueTask.FromResult(parameter.DefaultValue is DBNull ? null : parameter.DefaultValue);
                if (_nullable) return ValueTask.FromResult<object?>(null);
                throw new FunctionBindingException($"The value '{parameter.Name}' is required{(fromHttp ? " (route or query)" : "")}.");
            }
            if (_type.IsInstanceOfType(raw)) return ValueTask.FromResult<object?>(raw);
            var text = Convert.ToString(raw, CultureInfo.InvariantCulture)!;
            try
            {
                object? converted = _type.IsEnum
                    ? Enum.Parse(_type, text, ignoreCase: true)
                    : TypeDescriptor.GetConverter(_type).ConvertFromInvariantString(text);
                return ValueTask.FromResult(converted);
            }
            catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException
                || e.InnerException is FormatException or OverflowException)
            {
                throw new FunctionBindingException($"The value '{parameter.Name}' is not a valid {_type.Name}.");
            }
        }
    }

    /// <summary>The JSON request body, deserialized with the app's JSON options; bad JSON is a 400.</summary>
    private sealed class JsonBody(ParameterInfo parameter) : ParameterBinding
    {
        private readonly bool _optional = parameter.HasDefaultValue || new NullabilityInfoContext().Create(parameter).WriteState == NullabilityState.Nullable;
        private JsonSerializerOptions? _options;

        public override async ValueTask<object?> BindAsync(FunctionContext context)
        {
            var request = context.HttpContext!.Request;
            var options = _options ??= context.InstanceServices.GetService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>()?.Value.SerializerOptions
                ?? JsonSerializerOptions.Web;
            if (request.ContentLength == 0 || (request.ContentLength is null && !request.Headers.TransferEncoding.Any()
                && request.Method is "GET" or "HEAD" or "DELETE"))
            {
                return _optional ? null : throw new FunctionBindingException($"A JSON request body ('{parameter.Name}') is required.");
            }
            if (request.ContentType is { } contentType && !contentType.Contains("json", StringComparison.OrdinalIgnoreCase))
                throw new FunctionBindingException($"The request body must be JSON (Content-Type application/json), not '{contentType}'.");
            try
            {
                var value = await JsonSerializer.DeserializeAsync(request.Body, parameter.ParameterType, options, context.CancellationToken).ConfigureAwait(false);
                if (value is null && !_optional) throw new FunctionBindingException($"A JSON request body ('{parameter.Name}') is required.");
                return value;
            }
            catch (JsonException e)
            {
                // JsonException's message names the JSON path and position; it carries no stack trace to the client.
                throw new FunctionBindingException($"The request body is not valid JSON for '{parameter.Name}': {e.Message}", e);
            }
        }
    }

    /// <summary>A queue message as string, bytes, BinaryData, the message itself, or a type read from JSON.</summary>
    private sealed class QueuePayload(Func<QueueMessage, object?> convert) : ParameterBinding
    {
        public static ParameterBinding Create(Type type, string name)
        {
            if (type == typeof(QueueMessage)) return new QueuePayload(m => m);
            if (type == typeof(string)) return new QueuePayload(m => Encoding.UTF8.GetString(m.Body.Span));
            if (type == typeof(byte[])) return new QueuePayload(m => m.Body.ToArray());
            if (type == typeof(ReadOnlyMemory<byte>)) return new QueuePayload(m => m.Body);
            if (type == typeof(BinaryData)) return new QueuePayload(m => new BinaryData(m.Body));
            return new QueuePayload(m =>
            {
                try
                {
                    return JsonSerializer.Deserialize(m.Body.Span, type, JsonSerializerOptions.Web)
                        ?? throw new FunctionBindingException($"Queue message {m.Id} is JSON null; '{name}' needs a {type.Name}.");
                }
                catch (JsonException e)
                {
                    throw new FunctionBindingException($"Queue message {m.Id} is not valid JSON for '{name}' ({type.Name}): {e.Message}", e);
                }
            });
        }

        public override ValueTask<object?> BindAsync(FunctionContext context) => ValueTask.FromResult(convert((QueueMessage)context.TriggerPayload!));
    }
}
