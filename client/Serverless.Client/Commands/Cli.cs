using System.CommandLine;
using System.Security.Cryptography;
using System.Text.Json;

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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException
                                       or JsonException or InvalidOperationException or CryptographicException or FormatException)
        {
            Console.Error.WriteLine($"error: {OneLine(e.Message)}");
            return Failed;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Still one line: an unexpected failure names its type so it can be reported.
            Console.Error.WriteLine($"error: unexpected {e.GetType().Name}: {OneLine(e.Message)}");
            return Failed;
        }
    }

    /// <summary>Collapses line breaks and runs of whitespace so a message fits one line.</summary>
    public static string OneLine(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
}
