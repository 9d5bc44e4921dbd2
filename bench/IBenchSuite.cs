namespace Serverless.Bench;

/// <summary>One benchmark suite, found by reflection: add a class in bench/Suites/.</summary>
internal interface IBenchSuite
{
    string Name { get; }

    /// <summary>Runs the suite; the last line written must be <see cref="Result"/>'s.</summary>
    Task<int> RunAsync(BenchOptions options);
}

internal sealed record BenchOptions(bool Quick, string[] Args);
