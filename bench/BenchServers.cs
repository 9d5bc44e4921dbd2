namespace Serverless.Bench;

/// <summary>Servers a suite may measure against when the caller started them (scripts/test.sh exports the same variables).</summary>
internal static class BenchServers
{
    /// <summary>
    /// Azurite's connection string when SERVERLESS_TEST_AZURITE_BLOB, _QUEUE and _TABLE name its endpoints, else null
    /// (the suite then measures the embedded stores only and says so).
    /// </summary>
    public static string? AzuriteConnectionString()
    {
        string? blob = Environment.GetEnvironmentVariable("SERVERLESS_TEST_AZURITE_BLOB");
        string? queue = Environment.GetEnvironmentVariable("SERVERLESS_TEST_AZURITE_QUEUE");
        string? table = Environment.GetEnvironmentVariable("SERVERLESS_TEST_AZURITE_TABLE");
        // Azurite's documented development account (not a secret).
        return blob is { Length: > 0 } && queue is { Length: > 0 } && table is { Length: > 0 }
            ? "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                + $"BlobEndpoint={blob};QueueEndpoint={queue};TableEndpoint={table};"
            : null;
    }
}
