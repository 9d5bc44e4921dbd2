namespace Serverless.Functions.Fraud.Services;

/// <summary>Machine-readable reasons of fraud refusals (the ProblemDetails <c>code</c> extension).</summary>
public static class FraudRefusalCodes
{
    public const string BadRequest = "bad-request";
    public const string UnknownModel = "unknown-model";
    public const string Conflict = "conflict";
    public const string GateFailed = "gate-failed";
    public const string NoEvaluationSet = "no-evaluation-set";
    public const string NoChampion = "no-champion";
    public const string MalformedTransaction = "malformed-transaction";
    public const string ProcessingFailed = "processing-failed";
}

/// <summary>A refusal with its code and HTTP status; its message never quotes a value from the request.</summary>
public sealed class FraudRefusedException(string code, string message, int status = StatusCodes.Status400BadRequest, object? details = null) : Exception(message)
{
    public string Code { get; } = code;
    public int Status { get; } = status;
    public object? Details { get; } = details;

    public IResult ToProblem() => Problem(Code, Message, Status, Details);

    public static IResult Problem(string code, string detail, int status = StatusCodes.Status400BadRequest, object? details = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (details is not null) extensions["details"] = details;
        return Results.Problem(statusCode: status, title: "The fraud request was refused.", detail: detail, extensions: extensions);
    }
}
