namespace Serverless.Bench.Suites;

/// <summary>
/// Security-layer figures that the <c>host</c> suite appends to its RESULT line
/// (envelope encryption MB/s, audit appends/s). Filled in by the security layer (issue 7).
/// </summary>
internal static class SecurityFigures
{
    public static Task<IReadOnlyList<(string Key, object Value)>> MeasureAsync(bool quick) =>
        Task.FromResult<IReadOnlyList<(string Key, object Value)>>([]);
}
