using System.Text;
using Serverless.Storage;
using Serverless.Storage.Tests.Support;

namespace Serverless.Storage.Tests;

/// <summary>The embedded blob store's conditional writes hold across processes, not just threads.</summary>
public sealed class FileBlobStoreProcessTests
{
    [Fact]
    public async Task Concurrent_conditional_writes_from_two_processes_exactly_one_wins()
    {
        using var data = new TempDirectory();
        var store = Stores.OpenEmbeddedBlobContainer(data.Path);
        for (var round = 0; round < 3; round++)
        {
            var name = $"contended/{round}";
            var start = await store.PutAsync(name, new MemoryStream(Encoding.UTF8.GetBytes("start")));
            var go = Path.Combine(data.Path, $"go-{round}");
            var racers = Enumerable.Range(0, 2).Select(_ => TestWorkerProcess.Start(["blob-race", data.Path, name, start.ETag, go])).ToArray();
            try
            {
                await Task.Delay(500); // let both processes start and spin on the go file
                await File.WriteAllTextAsync(go, "go");
                var outputs = await Task.WhenAll(racers.Select(async p =>
                {
                    var output = await p.StandardOutput.ReadToEndAsync();
                    await p.WaitForExitAsync();
                    Assert.Equal(0, p.ExitCode);
                    return output.Trim();
                }));
                Assert.Equal(["LOST", "WON"], outputs.Order());
                await using var final = await store.GetAsync(name);
                using var reader = new StreamReader(final!.Content);
                Assert.StartsWith("written by ", await reader.ReadToEndAsync());
            }
            finally
            {
                foreach (var p in racers)
                {
                    if (!p.HasExited) p.Kill(entireProcessTree: true);
                    p.Dispose();
                }
            }
        }
    }
}
