using System.Security.Cryptography;
using Serverless.Storage;
using Serverless.Security.Envelope;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Envelope;

public sealed class EncryptedBlobStoreTests(KeyringFixture keys) : IClassFixture<KeyringFixture>
{
    private async Task<(MemoryBlobStore Raw, EncryptedBlobStore Store, string KeyName)> NewStoreAsync()
    {
        var name = await keys.NewKeyAsync(KeyKind.Wrapping);
        var raw = new MemoryBlobStore();
        return (raw, new EncryptedBlobStore(raw, new EnvelopeEncryptor(keys.Keyring, new EnvelopeOptions { KeyName = name, ChunkSize = 1024 })), name);
    }

    private static async Task<byte[]> ReadAsync(IBlobStore store, string name)
    {
        await using var download = await store.GetAsync(name) ?? throw new InvalidOperationException("missing");
        using var buffer = new MemoryStream();
        await download.Content.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    [Fact]
    public async Task Objects_are_stored_encrypted_and_read_back_in_plaintext()
    {
        var (raw, store, _) = await NewStoreAsync();
        var plaintext = "global checkpoint round 7 "u8.ToArray().Concat(RandomNumberGenerator.GetBytes(5000)).ToArray();
        await store.PutAsync("ckpt/round-7", new MemoryStream(plaintext));
        Assert.Equal(plaintext, await ReadAsync(store, "ckpt/round-7"));
        Assert.True(raw.GetRaw("ckpt/round-7").AsSpan().IndexOf("global checkpoint"u8) < 0);
        Assert.Null(await store.GetAsync("ckpt/absent"));
    }

    [Fact]
    public async Task Conditions_pass_through_to_the_inner_store()
    {
        var (_, store, _) = await NewStoreAsync();
        var first = await store.PutAsync("c", new MemoryStream([1]), BlobCondition.MustNotExist);
        await Assert.ThrowsAsync<BlobConditionFailedException>(() => store.PutAsync("c", new MemoryStream([2]), BlobCondition.MustNotExist));
        await store.PutAsync("c", new MemoryStream([3]), BlobCondition.MustMatch(first.ETag));
        Assert.Equal([3], await ReadAsync(store, "c"));
    }

    [Fact]
    public async Task A_blob_copied_to_another_name_fails_to_decrypt()
    {
        var (raw, store, _) = await NewStoreAsync();
        await store.PutAsync("federations/hospital-a/model", new MemoryStream(RandomNumberGenerator.GetBytes(100)));
        raw.SetRaw("federations/hospital-b/model", raw.GetRaw("federations/hospital-a/model"));
        await Assert.ThrowsAsync<CryptographicException>(() => ReadAsync(store, "federations/hospital-b/model"));
    }

    [Fact]
    public async Task Rotation_keeps_old_objects_readable_new_ones_on_the_new_version_and_rewrap_moves_the_old()
    {
        var (raw, store, keyName) = await NewStoreAsync();
        var oldText = RandomNumberGenerator.GetBytes(3000);
        await store.PutAsync("old", new MemoryStream(oldText));
        var v1 = (await store.GetEnvelopeInfoAsync("old"))!.KeyId;

        var v2 = (await keys.Keyring.RotateKeyAsync(keyName)).Id;
        var newText = RandomNumberGenerator.GetBytes(10);
        await store.PutAsync("new", new MemoryStream(newText));
        Assert.Equal(v1, (await store.GetEnvelopeInfoAsync("old"))!.KeyId);
        Assert.Equal(v2, (await store.GetEnvelopeInfoAsync("new"))!.KeyId);
        Assert.Equal(oldText, await ReadAsync(store, "old"));
        Assert.Equal(newText, await ReadAsync(store, "new"));

        var payloadBefore = raw.GetRaw("old")[^(3000 + 3 * 16)..];
        Assert.Equal(1, await store.RewrapAllAsync());
        Assert.Equal(v2, (await store.GetEnvelopeInfoAsync("old"))!.KeyId);
        Assert.Equal(payloadBefore, raw.GetRaw("old")[^(3000 + 3 * 16)..]); // payload untouched: only the header changed

        await keys.Keyring.DisableVersionAsync(v1);
        Assert.Equal(oldText, await ReadAsync(store, "old"));
        Assert.Equal(0, await store.RewrapAllAsync());
    }

    [Fact]
    public async Task Objects_on_a_disabled_version_are_refused_with_a_clear_error()
    {
        var (_, store, keyName) = await NewStoreAsync();
        await store.PutAsync("x", new MemoryStream([1, 2, 3]));
        var v1 = (await store.GetEnvelopeInfoAsync("x"))!.KeyId;
        await keys.Keyring.RotateKeyAsync(keyName);
        await keys.Keyring.DisableVersionAsync(v1);
        var error = await Assert.ThrowsAsync<CryptographicException>(() => ReadAsync(store, "x"));
        Assert.Contains("disabled", error.Message);
    }
}
