using Azure;
using Serverless.Storage;
using Serverless.Testing;

namespace Serverless.Storage.Tests;

/// <summary>The ways an Azure store authenticates, against Azurite through the Azure SDK.</summary>
public sealed class AzureStorageAuthenticationTests
{
    private static string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={TestServers.AzuriteAccountName};AccountKey={TestServers.AzuriteAccountKey};" +
        $"BlobEndpoint={TestServers.AzuriteBlobEndpoint};QueueEndpoint={TestServers.AzuriteQueueEndpoint};";

    [ServerFact]
    public async Task A_wrong_account_key_is_refused_and_the_right_one_accepted()
    {
        var wrongKey = Convert.ToBase64String(new byte[64]);
        var wrong = Stores.OpenAzureQueues(new Uri(TestServers.AzuriteQueueEndpoint), TestServers.AzuriteAccountName, wrongKey);
        var e = await Assert.ThrowsAsync<RequestFailedException>(() => wrong.CreateQueueAsync("auth-check"));
        Assert.Equal(403, e.Status);

        var right = Stores.OpenAzureQueues(new Uri(TestServers.AzuriteQueueEndpoint), TestServers.AzuriteAccountName, TestServers.AzuriteAccountKey);
        await right.CreateQueueAsync("auth-check");
    }

    [Fact]
    public void A_key_that_is_not_base64_fails_at_open_with_a_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => Stores.OpenAzureBlobs(new Uri("http://127.0.0.1:1/devstoreaccount1"), "acct", "not base64!"));
        Assert.Contains("base64", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("not base64!", e.Message, StringComparison.Ordinal); // the key itself is never echoed
    }

    [ServerFact]
    public async Task A_connection_string_opens_blobs_and_queues()
    {
        var blobs = Stores.OpenAzureBlobs(ConnectionString).GetContainer("cs-" + Guid.NewGuid().ToString("N")[..20]);
        var written = await blobs.PutAsync("a/b.bin", new MemoryStream([1, 2, 3]));
        await using (var read = await blobs.GetAsync("a/b.bin"))
        {
            Assert.NotNull(read);
            Assert.Equal(written.ETag, read.Properties.ETag);
        }

        var queues = Stores.OpenAzureQueues(ConnectionString);
        var queue = "cs-" + Guid.NewGuid().ToString("N")[..20];
        await queues.PutAsync(queue, new byte[] { 0, 255, 7 });
        var message = Assert.Single(await queues.GetAsync(queue, 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(new byte[] { 0, 255, 7 }, message.Body.ToArray());
    }
}
