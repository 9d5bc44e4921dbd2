using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Storage.Azure;
using Serverless.Testing;

namespace Serverless.Runtime.Tests.Storage;

public sealed class SharedKeyPolicyTests
{
    [Fact]
    public void String_to_sign_follows_the_documented_layout()
    {
        var pipeline = HttpPipelineBuilder.Build(new StorageClientOptions());
        using var message = pipeline.CreateMessage();
        var request = message.Request;
        request.Method = RequestMethod.Put;
        request.Uri.Reset(new Uri("http://127.0.0.1:10000/devstoreaccount1/my-container/dir/a%20b.txt?restype=container&comp=list&Prefix=x%2Fy&comp=block"));
        request.Headers.SetValue("x-ms-version", "2021-08-06");
        request.Headers.SetValue("x-ms-date", "Sun, 22 Nov 2026 07:00:00 GMT");
        request.Headers.SetValue("X-MS-Blob-Type", "  BlockBlob ");
        request.Headers.SetValue("Content-Type", "application/octet-stream");
        request.Headers.SetValue("If-Match", "\"0x1\"");
        request.Content = RequestContent.Create(new byte[5]);

        var expected = string.Join('\n',
            "PUT", "", "", "5", "", "application/octet-stream", "", "", "\"0x1\"", "", "", "",
            "x-ms-blob-type:BlockBlob",
            "x-ms-date:Sun, 22 Nov 2026 07:00:00 GMT",
            "x-ms-version:2021-08-06",
            "/devstoreaccount1/devstoreaccount1/my-container/dir/a%20b.txt",
            "comp:block,list",
            "prefix:x/y",
            "restype:container");
        Assert.Equal(expected, SharedKeyPolicy.BuildStringToSign(request, "devstoreaccount1"));
    }

    [Fact]
    public void Zero_content_length_is_signed_as_empty()
    {
        var pipeline = HttpPipelineBuilder.Build(new StorageClientOptions());
        using var message = pipeline.CreateMessage();
        message.Request.Method = RequestMethod.Get;
        message.Request.Uri.Reset(new Uri("https://acct.queue.core.windows.net/q"));
        var lines = SharedKeyPolicy.BuildStringToSign(message.Request, "acct").Split('\n');
        Assert.Equal("GET", lines[0]);
        Assert.Equal("", lines[3]);
        Assert.Equal("/acct/q", lines[^1]);
    }

    [ServerFact]
    public async Task Azurite_rejects_a_wrong_key_and_accepts_the_right_one()
    {
        var wrongKey = Convert.ToBase64String(new byte[64]);
        var wrong = Stores.OpenAzureQueues(new Uri(TestServers.AzuriteQueueEndpoint), TestServers.AzuriteAccountName, wrongKey);
        var e = await Assert.ThrowsAsync<RequestFailedException>(() => wrong.CreateQueueAsync("auth-check"));
        Assert.Equal(403, e.Status);
        var right = Stores.OpenAzureQueues(new Uri(TestServers.AzuriteQueueEndpoint), TestServers.AzuriteAccountName, TestServers.AzuriteAccountKey);
        await right.CreateQueueAsync("auth-check");
    }
}
