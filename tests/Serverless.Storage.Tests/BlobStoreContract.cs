using System.Text;
using Serverless.Storage;
using Serverless.Storage.Tests.Support;

namespace Serverless.Storage.Tests;

/// <summary>The behaviour every <see cref="IBlobStore"/> backend must show; one subclass per backend.</summary>
public abstract class BlobStoreContract
{
    /// <summary>A fresh, empty container.</summary>
    protected abstract IBlobStore CreateStore();

    private static MemoryStream Text(string s) => new(Encoding.UTF8.GetBytes(s));

    private static async Task<string?> ReadAsync(IBlobStore store, string name)
    {
        await using var download = await store.GetAsync(name);
        if (download is null) return null;
        using var reader = new StreamReader(download.Content);
        return await reader.ReadToEndAsync();
    }

    [ContractFact]
    public async Task Put_then_get_round_trips_content_and_properties()
    {
        var store = CreateStore();
        var put = await store.PutAsync("a/b/c.bin", Text("hello world"));
        Assert.Equal("a/b/c.bin", put.Name);
        Assert.Equal(11, put.Length);
        Assert.False(string.IsNullOrEmpty(put.ETag));

        await using var download = await store.GetAsync("a/b/c.bin");
        Assert.NotNull(download);
        Assert.Equal(put.ETag, download.Properties.ETag);
        Assert.Equal(11, download.Properties.Length);
        using var reader = new StreamReader(download.Content);
        Assert.Equal("hello world", await reader.ReadToEndAsync());
    }

    [ContractFact]
    public async Task Binary_content_with_every_byte_value_round_trips()
    {
        var store = CreateStore();
        var bytes = new byte[70_000];
        for (var i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 31 + 7);
        await store.PutAsync("bin", new MemoryStream(bytes));
        await using var download = await store.GetAsync("bin");
        var copy = new MemoryStream();
        await download!.Content.CopyToAsync(copy);
        Assert.Equal(bytes, copy.ToArray());
    }

    [ContractFact]
    public async Task Get_of_a_missing_blob_is_null()
    {
        var store = CreateStore();
        Assert.Null(await store.GetAsync("nope/never"));
    }

    [ContractFact]
    public async Task ETag_changes_on_every_write_even_with_the_same_content_and_is_stable_between_reads()
    {
        var store = CreateStore();
        var first = await store.PutAsync("x", Text("same"));
        var second = await store.PutAsync("x", Text("same"));
        Assert.NotEqual(first.ETag, second.ETag);
        await using (var a = await store.GetAsync("x"))
        await using (var b = await store.GetAsync("x"))
        {
            Assert.Equal(second.ETag, a!.Properties.ETag);
            Assert.Equal(second.ETag, b!.Properties.ETag);
        }
    }

    [ContractFact]
    public async Task IfMatch_writes_over_that_version_only()
    {
        var store = CreateStore();
        var v1 = await store.PutAsync("doc", Text("v1"));
        var v2 = await store.PutAsync("doc", Text("v2"), BlobCondition.MustMatch(v1.ETag));
        await Assert.ThrowsAsync<BlobConditionFailedException>(() => store.PutAsync("doc", Text("v3"), BlobCondition.MustMatch(v1.ETag)));
        Assert.Equal("v2", await ReadAsync(store, "doc"));
        await store.PutAsync("doc", Text("v3"), BlobCondition.MustMatch(v2.ETag));
        Assert.Equal("v3", await ReadAsync(store, "doc"));
    }

    [ContractFact]
    public async Task IfMatch_on_a_missing_blob_fails()
    {
        var store = CreateStore();
        var other = await store.PutAsync("other", Text("x"));
        await Assert.ThrowsAsync<BlobConditionFailedException>(() => store.PutAsync("missing", Text("v"), BlobCondition.MustMatch(other.ETag)));
        Assert.Null(await store.GetAsync("missing"));
    }

    [ContractFact]
    public async Task IfNoneMatch_star_creates_only()
    {
        var store = CreateStore();
        await store.PutAsync("once", Text("first"), BlobCondition.MustNotExist);
        var e = await Assert.ThrowsAsync<BlobConditionFailedException>(() => store.PutAsync("once", Text("second"), BlobCondition.MustNotExist));
        Assert.Equal("once", e.BlobName);
        Assert.Equal("first", await ReadAsync(store, "once"));
    }

    [ContractFact]
    public async Task List_returns_names_with_the_prefix_in_ordinal_order()
    {
        var store = CreateStore();
        foreach (var name in new[] { "logs/2026/b", "logs/2026/a", "logs/2027/z", "logsx", "other/a", "logs/2026-x" })
            await store.PutAsync(name, Text(name));
        var all = new List<string>();
        await foreach (var p in store.ListAsync("logs/2026")) all.Add(p.Name);
        Assert.Equal(["logs/2026-x", "logs/2026/a", "logs/2026/b"], all);

        var everything = new List<BlobProperties>();
        await foreach (var p in store.ListAsync()) everything.Add(p);
        Assert.Equal(6, everything.Count);
        Assert.Equal(everything.Select(p => p.Name).Order(StringComparer.Ordinal), everything.Select(p => p.Name));
        Assert.All(everything, p => Assert.Equal(Encoding.UTF8.GetByteCount(p.Name), p.Length));
    }

    [ContractFact]
    public async Task Names_with_spaces_unicode_and_dots_round_trip_through_list()
    {
        var store = CreateStore();
        string[] names = ["dir with space/f.txt", "ünïcödé/ß", "a/.hidden", "a/b.c.d", "percent%20name"];
        foreach (var n in names) await store.PutAsync(n, Text(n));
        var listed = new List<string>();
        await foreach (var p in store.ListAsync()) listed.Add(p.Name);
        Assert.Equal(names.Order(StringComparer.Ordinal), listed);
        foreach (var n in names) Assert.Equal(n, await ReadAsync(store, n));
    }

    [ContractFact]
    public async Task Delete_removes_and_reports_whether_it_existed()
    {
        var store = CreateStore();
        var v = await store.PutAsync("gone", Text("x"));
        await Assert.ThrowsAsync<BlobConditionFailedException>(() => store.DeleteAsync("gone", BlobCondition.MustMatch("\"0x0BADBADBAD\"")));
        Assert.NotNull(await store.GetAsync("gone"));
        Assert.True(await store.DeleteAsync("gone", BlobCondition.MustMatch(v.ETag)));
        Assert.Null(await store.GetAsync("gone"));
        Assert.False(await store.DeleteAsync("gone"));
    }

    [ContractFact]
    public async Task Invalid_names_are_rejected()
    {
        var store = CreateStore();
        await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("", Text("x")));
        await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("a//b", Text("x")));
        await Assert.ThrowsAsync<ArgumentException>(() => store.PutAsync("../escape", Text("x")));
        await Assert.ThrowsAsync<ArgumentException>(() => store.GetAsync("a/./b"));
    }

    [ContractFact]
    public async Task Concurrent_conditional_writes_exactly_one_wins()
    {
        var store = CreateStore();
        for (var round = 0; round < 5; round++)
        {
            var name = $"race-{round}";
            var start = await store.PutAsync(name, Text("start"));
            using var gate = new ManualResetEventSlim();
            var writers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
            {
                gate.Wait();
                try
                {
                    await store.PutAsync(name, Text($"writer {i}"), BlobCondition.MustMatch(start.ETag));
                    return i;
                }
                catch (BlobConditionFailedException)
                {
                    return -1;
                }
            })).ToArray();
            gate.Set();
            var results = await Task.WhenAll(writers);
            var winners = results.Where(r => r >= 0).ToArray();
            Assert.Single(winners);
            Assert.Equal($"writer {winners[0]}", await ReadAsync(store, name));
        }
    }

    [ContractFact]
    public async Task Concurrent_creates_with_IfNoneMatch_exactly_one_wins()
    {
        var store = CreateStore();
        using var gate = new ManualResetEventSlim();
        var writers = Enumerable.Range(0, 8).Select(i => Task.Run(async () =>
        {
            gate.Wait();
            try
            {
                await store.PutAsync("lease", Text($"owner {i}"), BlobCondition.MustNotExist);
                return true;
            }
            catch (BlobConditionFailedException)
            {
                return false;
            }
        })).ToArray();
        gate.Set();
        Assert.Single(await Task.WhenAll(writers), won => won);
    }
}
