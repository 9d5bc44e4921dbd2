using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace Serverless.Security.Validation;

/// <summary>Either a validated body or the ProblemDetails result to return instead.</summary>
public readonly record struct JsonBodyResult<T>(T? Value, IResult? Problem)
{
    public bool IsValid => Problem is null;
}

/// <summary>
/// Reads and validates a JSON request body: media type (415), size limit (413), well-formed JSON
/// with no unknown members (400), and DataAnnotations / IValidatableObject rules (400 with a
/// field -> errors map). Every failure is a ProblemDetails (RFC 9457) response.
/// </summary>
/// <remarks>On records, put attributes on the properties: <c>[property: Range(1, 10)] int Clients</c>.</remarks>
public static class JsonBody
{
    public const long DefaultMaxBytes = 1024 * 1024;

    private static readonly JsonSerializerOptions Strict = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    public static async Task<JsonBodyResult<T>> ReadAsync<T>(HttpRequest request, long maxBytes = DefaultMaxBytes, JsonSerializerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!request.HasJsonContentType())
            return Fail<T>(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type", "The body must be application/json.");
        if (request.ContentLength is { } declared && declared > maxBytes)
            return Fail<T>(StatusCodes.Status413PayloadTooLarge, "Body too large", $"The body is {declared} bytes; the limit is {maxBytes}.");

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > maxBytes)
                return Fail<T>(StatusCodes.Status413PayloadTooLarge, "Body too large", $"The body exceeds the limit of {maxBytes} bytes.");
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0) return Fail<T>(StatusCodes.Status400BadRequest, "Empty body", "A JSON body is required.");

        T? value;
        try
        {
            value = JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), options ?? Strict);
        }
        catch (JsonException e)
        {
            return Fail<T>(StatusCodes.Status400BadRequest, "Malformed JSON", e.Message);
        }
        if (value is null) return Fail<T>(StatusCodes.Status400BadRequest, "Empty body", "The body is JSON null.");

        var errors = new List<ValidationResult>();
        if (!Validator.TryValidateObject(value, new ValidationContext(value), errors, validateAllProperties: true))
        {
            var map = errors
                .SelectMany(e => (e.MemberNames.Any() ? e.MemberNames : [""]).Select(m => (Member: m, e.ErrorMessage)))
                .GroupBy(e => e.Member)
                .ToDictionary(g => g.Key, g => g.Select(e => e.ErrorMessage ?? "invalid").ToArray());
            return new JsonBodyResult<T>(default, Results.ValidationProblem(map, title: "Invalid body"));
        }
        return new JsonBodyResult<T>(value, null);
    }

    private static JsonBodyResult<T> Fail<T>(int status, string title, string detail) =>
        new(default, Results.Problem(statusCode: status, title: title, detail: detail));
}
