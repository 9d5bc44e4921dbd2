namespace Serverless.Testing;

/// <summary>
/// Where the real servers and peers started by <c>scripts/test.sh</c> live. A test that needs one
/// fails with a clear message when it is absent: only an explicit local opt-out
/// (<c>SERVERLESS_TESTS_LOCAL_ONLY=1</c>) turns such tests into skips.
/// </summary>
public static class TestServers
{
    public static bool LocalOnly => Environment.GetEnvironmentVariable("SERVERLESS_TESTS_LOCAL_ONLY") == "1";

    /// <summary>Azurite's blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1.</summary>
    public static string AzuriteBlobEndpoint => Require("SERVERLESS_TEST_AZURITE_BLOB");

    /// <summary>Azurite's queue endpoint, e.g. http://127.0.0.1:10001/devstoreaccount1.</summary>
    public static string AzuriteQueueEndpoint => Require("SERVERLESS_TEST_AZURITE_QUEUE");

    /// <summary>Azurite's table endpoint, e.g. http://127.0.0.1:10002/devstoreaccount1 (DurableTask.AzureStorage needs tables).</summary>
    public static string AzuriteTableEndpoint => Require("SERVERLESS_TEST_AZURITE_TABLE");

    /// <summary>A connection string to Azurite's blob, queue and table services with the development account.</summary>
    public static string AzuriteConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AzuriteAccountName};AccountKey={AzuriteAccountKey};" +
        $"BlobEndpoint={AzuriteBlobEndpoint};QueueEndpoint={AzuriteQueueEndpoint};TableEndpoint={AzuriteTableEndpoint};";

    /// <summary>A python3 with Debian's python3-onnx installed (the ONNX checker).</summary>
    public static string OnnxCheckerPython => Require("ONNX_CHECKER_PYTHON");

    /// <summary>Azurite's well-known development account (documented, not a secret).</summary>
    public const string AzuriteAccountName = "devstoreaccount1";
    public const string AzuriteAccountKey =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static string Require(string name) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{name} is not set: run the tests through scripts/test.sh, which installs and starts the servers " +
                "(SERVERLESS_TESTS_LOCAL_ONLY=1 skips server-backed tests in a local loop).");
}

/// <summary>A fact that needs a server from scripts/test.sh; skipped only on an explicit local opt-out.</summary>
public sealed class ServerFactAttribute : FactAttribute
{
    public ServerFactAttribute()
    {
        if (TestServers.LocalOnly)
            Skip = "SERVERLESS_TESTS_LOCAL_ONLY=1: server-backed test skipped in a local run";
    }
}

/// <summary>A theory that needs a server from scripts/test.sh; skipped only on an explicit local opt-out.</summary>
public sealed class ServerTheoryAttribute : TheoryAttribute
{
    public ServerTheoryAttribute()
    {
        if (TestServers.LocalOnly)
            Skip = "SERVERLESS_TESTS_LOCAL_ONLY=1: server-backed test skipped in a local run";
    }
}
