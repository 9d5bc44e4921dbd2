using Microsoft.Data.Sqlite;
using Serverless.Client;

namespace Serverless.Functions.Tests.Client;

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

/// <summary>A fresh directory, deleted afterwards.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "cli-test-" + Guid.NewGuid().ToString("N"))).FullName;

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools(); // pooled handles would keep audit.db open
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
