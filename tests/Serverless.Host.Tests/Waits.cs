namespace Serverless.Host.Tests;

/// <summary>Waiting for an effect the host produces on its own time (a marker file, a timer's run).</summary>
internal static class Waits
{
    /// <summary>Polls <paramref name="condition"/> every <paramref name="poll"/> until it holds; fails with <paramref name="what"/> after <paramref name="patience"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan patience, string what, TimeSpan? poll = null)
    {
        DateTime deadline = DateTime.UtcNow + patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException($"{what} (waited {patience})");
            await Task.Delay(poll ?? TimeSpan.FromMilliseconds(50));
        }
    }
}
