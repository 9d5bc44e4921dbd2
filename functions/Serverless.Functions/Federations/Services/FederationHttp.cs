using System.Text.Json.Serialization;
using Serverless.Federation.Rounds;
using Serverless.Security.Validation;

namespace Serverless.Functions.Federations.Services;

/// <summary>JSON in and out of the federation endpoints, with <see cref="RoundJson.Options"/> and ProblemDetails for every refusal.</summary>
internal static class FederationHttp
{
    /// <summary>
    /// Request bodies: the protocol's options, unknown members refused, null refused where the record
    /// says non-nullable, and every constructor parameter without a default required (a
    /// <c>"shares": null</c> must be a 400 at intake, not a NullReferenceException when the round finishes).
    /// </summary>
    public static readonly JsonSerializerOptions Strict = CreateStrict();

    private static JsonSerializerOptions CreateStrict()
    {
        var o = new JsonSerializerOptions(RoundJson.Options)
        {
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
        };
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    public static IResult Json<T>(T value, int status = StatusCodes.Status200OK) => Results.Json(value, RoundJson.Options, statusCode: status);

    public static IResult Problem(int status, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        Results.Problem(statusCode: status, title: title, detail: detail, extensions: extensions);

    public static IResult NotFound(string detail) => Problem(StatusCodes.Status404NotFound, "Not found", detail);

    public static IResult Conflict(string detail) => Problem(StatusCodes.Status409Conflict, "Conflict", detail);

    public static Task<JsonBodyResult<T>> ReadAsync<T>(HttpRequest request, long maxBytes, CancellationToken ct) =>
        JsonBody.ReadAsync<T>(request, maxBytes, Strict, ct);

    /// <summary>The caller's subject (client id for agents).</summary>
    public static string Actor(HttpRequest request) => request.HttpContext.User.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";

    public static IResult Refused(RoundRefusedException e) =>
        Problem(StatusCodes.Status409Conflict, e.Title, e.Message, e.EpsilonBudget is null ? null : new Dictionary<string, object?>
        {
            ["epsilonSpent"] = e.EpsilonSpent,
            ["epsilonBudget"] = e.EpsilonBudget,
            ["epsilonAfterRound"] = e.EpsilonAfterRound,
        });
}
