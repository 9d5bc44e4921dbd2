namespace Serverless.Inference;

/// <summary>
/// Machine-readable reasons attached to the <see cref="HeFormatException"/>s this library throws for the
/// refusals a service reports with their own codes (in <see cref="Exception.Data"/> under <see cref="DataKey"/>),
/// so callers need not parse messages.
/// </summary>
public static class InferenceErrors
{
    /// <summary>The <see cref="Exception.Data"/> key holding the reason.</summary>
    public const string DataKey = "Serverless.Inference.Reason";

    /// <summary>The blob was made under other CKKS parameters than the plan's.</summary>
    public const string WrongParameters = "wrong-parameters";

    /// <summary>More records than the limit.</summary>
    public const string TooManyRecords = "too-many-records";

    /// <summary>The input ended early.</summary>
    public const string Truncated = "truncated";

    /// <summary>Encrypted under other keys than the evaluation keys (or the decrypting partner's).</summary>
    public const string WrongKeys = "wrong-keys";

    /// <summary>The reason attached to <paramref name="exception"/>, or null (any other malformed input).</summary>
    public static string? ReasonOf(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception.Data[DataKey] as string;
    }

    internal static HeFormatException With(this HeFormatException exception, string reason)
    {
        exception.Data[DataKey] = reason;
        return exception;
    }
}
