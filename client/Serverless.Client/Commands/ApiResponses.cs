namespace Serverless.Client.Commands;

/// <summary>A refusal or failure the server answered with ProblemDetails, as one line: "server answered 403 Forbidden: ...".</summary>
internal sealed class ApiException(HttpStatusCode status, string message, string? code = null) : InvalidOperationException(message)
{
    public HttpStatusCode Status { get; } = status;

    /// <summary>The machine-readable refusal code (ProblemDetails extension <c>code</c>), when the server gave one.</summary>
    public string? Code { get; } = code;
}

/// <summary>Reading the API's answers the same way in every client: JSON bodies, and ProblemDetails refusals as <see cref="ApiException"/>.</summary>
internal static class ApiResponses
{
    /// <summary>Turns a non-success answer into one line: status, title, detail (RFC 9457 members).</summary>
    public static async Task EnsureSuccessAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode) return;
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        string? title = null, detail = null, code = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                title = root.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                detail = root.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
                code = root.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            }
        }
        catch (JsonException)
        {
            detail = text.Length > 200 ? text[..200] : text;
        }
        var status = (int)response.StatusCode;
        throw new ApiException(response.StatusCode,
            $"server answered {status} {response.ReasonPhrase}{(title is null ? "" : ": " + title)}{(detail is null ? "" : " " + detail)}", code);
    }

    /// <summary>The typed answer of a call (the app writes the contracts with ASP.NET Core's web JSON defaults); disposes the response; a refusal throws.</summary>
    public static async Task<T> ReadContractAsync<T>(HttpResponseMessage answer, CancellationToken cancellationToken)
    {
        using var response = answer;
        await EnsureSuccessAsync(response, cancellationToken);
        return await System.Net.Http.Json.HttpContentJsonExtensions.ReadFromJsonAsync<T>(response.Content, JsonSerializerOptions.Web, cancellationToken)
            ?? throw new InvalidDataException($"the server answered {response.RequestMessage?.RequestUri?.AbsolutePath} with an empty {typeof(T).Name}");
    }

    public static async Task<JsonElement> ReadFromJsonElementAsync(this HttpContent content, CancellationToken cancellationToken)
    {
        var text = await content.ReadAsStringAsync(cancellationToken);
        if (string.IsNullOrWhiteSpace(text)) return default;
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.Clone();
    }
}
