namespace Serverless.Durable;

/// <summary>What went wrong in an activity, sub-orchestration or orchestration (serialized into history).</summary>
public sealed record TaskFailureDetails(string ErrorType, string ErrorMessage, string? StackTrace = null, TaskFailureDetails? InnerFailure = null)
{
    /// <summary>Captures an exception (and its inner exception chain).</summary>
    public static TaskFailureDetails FromException(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        // A failed activity seen by an orchestrator that did not handle it: keep the original details.
        if (exception is TaskFailedException tfe)
            return new TaskFailureDetails(tfe.GetType().FullName!, tfe.Message, tfe.StackTrace, tfe.FailureDetails);
        return new TaskFailureDetails(
            exception.GetType().FullName ?? exception.GetType().Name,
            exception.Message,
            exception.StackTrace,
            exception.InnerException is { } inner ? FromException(inner) : null);
    }

    /// <summary>True when this failure (or an inner one) was caused by an exception of type <typeparamref name="T"/>.</summary>
    public bool IsCausedBy<T>() where T : Exception =>
        ErrorType == typeof(T).FullName || (InnerFailure?.IsCausedBy<T>() ?? false);

    public override string ToString() => $"{ErrorType}: {ErrorMessage}";
}
