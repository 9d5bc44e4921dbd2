using Serverless.Client;

namespace Serverless.Client.Tests.Commands;

/// <summary>Runs <c>serverless-client</c> in-process and captures what it writes.</summary>
internal static class CliRunner
{
    public sealed record Result(int ExitCode, string Out, string Error)
    {
        public string[] ErrorLines => Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        public string[] OutLines => Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public static async Task<Result> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = await ClientProgram.RunAsync(args, output, error);
        return new Result(code, output.ToString(), error.ToString());
    }
}
