using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>A request or batch the service refuses, with a stable <see cref="Code"/> (<see cref="RefusalCodes"/>) and a reason a partner can act on.</summary>
internal sealed class InferenceRefusedException(string code, string reason) : Exception(reason)
{
    public string Code { get; } = code;

    /// <summary>The HTTP status a refusal is answered with.</summary>
    public static int StatusCodeFor(string code) => code switch
    {
        RefusalCodes.Unauthenticated => StatusCodes.Status401Unauthorized,
        RefusalCodes.Forbidden or RefusalCodes.ForeignKeys or RefusalCodes.NotEntitled => StatusCodes.Status403Forbidden,
        RefusalCodes.UnknownModel or RefusalCodes.BlobMissing => StatusCodes.Status404NotFound,
        RefusalCodes.Conflict => StatusCodes.Status409Conflict,
        RefusalCodes.BatchTooLarge => StatusCodes.Status413PayloadTooLarge,
        RefusalCodes.QuotaExceeded => StatusCodes.Status429TooManyRequests,
        RefusalCodes.KeysNotRegistered => StatusCodes.Status422UnprocessableEntity,
        _ => StatusCodes.Status400BadRequest,
    };

    /// <summary>ProblemDetails with the code as <c>type</c> suffix and extension, the reason as detail.</summary>
    public static IResult Problem(string code, string reason, int? status = null) => Results.Problem(
        statusCode: status ?? StatusCodeFor(code),
        title: Title(code),
        detail: reason,
        type: "https://serverless.local/problems/inference/" + code,
        extensions: new Dictionary<string, object?> { ["code"] = code });

    private static string Title(string code) => code switch
    {
        RefusalCodes.WrongParameters => "The CKKS parameters do not match the model version's evaluation plan.",
        RefusalCodes.ForeignKeys => "The evaluation keys belong to another partner.",
        RefusalCodes.KeysNotRegistered => "No evaluation keys are registered for this model version.",
        RefusalCodes.MalformedBatch => "The encrypted batch is malformed.",
        RefusalCodes.BatchTooLarge => "The batch is over the size limit.",
        RefusalCodes.QuotaExceeded => "The partner's daily query cap is reached.",
        RefusalCodes.DigestMismatch => "The batch does not match its SHA-256.",
        RefusalCodes.UnknownModel => "No such model version.",
        RefusalCodes.NotEntitled => "The partner is not entitled to this model version.",
        RefusalCodes.BlobMissing => "The batch blob does not exist.",
        RefusalCodes.Conflict => "The batch id was already used for other content.",
        RefusalCodes.Forbidden => "Forbidden.",
        RefusalCodes.Unauthenticated => "Authentication required.",
        _ => "The request was refused.",
    };
}
