namespace Serverless.Client.Commands;

/// <summary>Shared CLI plumbing: parse errors and failures become one line on stderr and a non-zero exit code.</summary>
internal static class Cli
{
    public const int Ok = 0, Failed = 1, Usage = 2;

    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            Console.Error.WriteLine("error: " + string.Join("; ", parse.Errors.Select(e => OneLine(e.Message))));
            return Usage;
        }
        return await parse.InvokeAsync();
    }

    /// <summary>Runs a command body; an expected failure prints "error: ..." on one line and returns <see cref="Failed"/>.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return Report(e, IsExpected(e));
        }
    }

    /// <summary>
    /// <see cref="Guard"/> for commands that call the server: its refusals, transport failures and an HTTP call
    /// that timed out are expected too. A cancellation (Ctrl+C) is not a failure and passes through.
    /// </summary>
    public static async Task<int> GuardAsync(Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is not OperationCanceledException || e is TaskCanceledException { InnerException: TimeoutException })
        {
            return Report(e, IsExpected(e) || e is HttpRequestException or TimeoutException or Agent.RoundsApiException or TaskCanceledException);
        }
    }

    private static bool IsExpected(Exception e) => e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException
        or JsonException or InvalidOperationException or CryptographicException or FormatException;

    private static int Report(Exception e, bool expected)
    {
        // Still one line when unexpected: the failure names its type so it can be reported.
        Console.Error.WriteLine(expected ? $"error: {OneLine(e.Message)}" : $"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}");
        return Failed;
    }

    /// <summary>Collapses line breaks and runs of whitespace so a message fits one line.</summary>
    public static string OneLine(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
