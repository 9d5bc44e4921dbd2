using Serverless.Storage;
using Serverless.Storage.Tests.Support;
using Serverless.Testing;

namespace Serverless.Storage.Tests;

public sealed class EmbeddedBlobStoreTests : BlobStoreContract, IDisposable
{
    private readonly TempDirectory _directory = new();

    protected override IBlobStore CreateStore() => Stores.OpenEmbeddedBlobContainer(Path.Combine(_directory.Path, Guid.NewGuid().ToString("N")));

    public void Dispose() => _directory.Dispose();
}

public sealed class AzureBlobStoreTests : BlobStoreContract, IServerBackedTests
{
    protected override IBlobStore CreateStore() =>
        Stores.OpenAzureBlobs(new Uri(TestServers.AzuriteBlobEndpoint), TestServers.AzuriteAccountName, TestServers.AzuriteAccountKey)
            .GetContainer("c-" + Guid.NewGuid().ToString("N")[..20]);
}

public sealed class EmbeddedQueueStoreTests : QueueStoreContract, IDisposable
{
    private readonly TempDirectory _directory = new();

    protected override IQueueStore CreateStore() => Stores.OpenEmbeddedQueues(Path.Combine(_directory.Path, "queues.db"));

    public void Dispose() => _directory.Dispose();
}

public sealed class AzureQueueStoreTests : QueueStoreContract, IServerBackedTests
{
    protected override IQueueStore CreateStore() =>
        Stores.OpenAzureQueues(new Uri(TestServers.AzuriteQueueEndpoint), TestServers.AzuriteAccountName, TestServers.AzuriteAccountKey);
}
