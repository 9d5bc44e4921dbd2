using System.Security.Cryptography;
using Azure.Core.Pipeline;
using Serverless.Security.Envelope;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Keys;

/// <summary>One HTTPS stand-in for Key Vault, shared by the tests of this class (each test uses its own key names).</summary>
public sealed class FakeKeyVaultFixture : IAsyncLifetime
{
    public FakeKeyVaultServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await FakeKeyVaultServer.StartAsync();
    public async Task DisposeAsync() => await Server.DisposeAsync();

    public AzureKeyVaultClient NewClient(string token = FakeKeyVaultServer.Token) =>
        new(Server.VaultUri, new StaticTokenCredential(token), new AzureKeyVaultClientOptions
        {
            Transport = new HttpClientTransport(MutualTls.CreateClientHandler(Server.Authority.Trust)),
            Retry = { MaxRetries = 0 },
            RsaKeySize = 2048,
        });
}

public sealed class AzureKeyVaultClientTests(FakeKeyVaultFixture vault) : IClassFixture<FakeKeyVaultFixture>
{
    private static string NewName() => "k-" + Guid.NewGuid().ToString("N")[..10];

    [Fact]
    public async Task Wrap_unwrap_with_RSA_OAEP_256_over_https()
    {
        var client = vault.NewClient();
        var name = NewName();
        var created = await client.CreateKeyAsync(name, KeyKind.Wrapping);
        Assert.Equal(KeyKind.Wrapping, created.Kind);
        var dataKey = RandomNumberGenerator.GetBytes(32);
        var wrapped = await client.WrapKeyAsync(name, dataKey);
        Assert.Equal(created.Id, wrapped.KeyId);
        Assert.Equal("RSA-OAEP-256", wrapped.Algorithm);
        Assert.Equal(256, wrapped.Ciphertext.Length); // RSA-2048 ciphertext
        Assert.Equal(dataKey, await client.UnwrapKeyAsync(wrapped));

        var tampered = wrapped.Ciphertext.ToArray();
        tampered[5] ^= 1;
        await Assert.ThrowsAnyAsync<CryptographicException>(() => client.UnwrapKeyAsync(wrapped with { Ciphertext = tampered }));
    }

    [Fact]
    public async Task Rotate_list_versions_across_pages_and_disable()
    {
        var client = vault.NewClient();
        var name = NewName();
        var v1 = await client.CreateKeyAsync(name, KeyKind.Wrapping);
        var old = await client.WrapKeyAsync(name, new byte[32]);
        var v2 = await client.RotateKeyAsync(name);
        var v3 = await client.RotateKeyAsync(name);
        var versions = await client.ListVersionsAsync(name); // the fake pages two at a time, newest first
        Assert.Equal([v1.Id, v2.Id, v3.Id], versions.Select(v => v.Id));
        Assert.Equal(v3.Id, (await client.WrapKeyAsync(name, new byte[32])).KeyId);
        Assert.Equal(new byte[32], await client.UnwrapKeyAsync(old));

        await client.DisableVersionAsync(v3.Id);
        Assert.False((await client.ListVersionsAsync(name)).Single(v => v.Id == v3.Id).Enabled);
        Assert.Equal(v2.Id, (await client.GetCurrentVersionAsync(name))!.Id);
        await Assert.ThrowsAsync<KeyVaultException>(() => client.CreateKeyAsync(name, KeyKind.Wrapping));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => client.RotateKeyAsync(NewName()));
        Assert.Null(await client.GetCurrentVersionAsync(NewName()));
    }

    [Fact]
    public async Task ES256_sign_verify_and_public_key_export()
    {
        var client = vault.NewClient();
        var name = NewName();
        await client.CreateKeyAsync(name, KeyKind.Signing);
        var digest = SHA256.HashData("audit head"u8);
        var signature = await client.SignAsync(name, digest);
        Assert.Equal("ES256", signature.Algorithm);
        Assert.True(await client.VerifyAsync(signature, digest));
        Assert.False(await client.VerifyAsync(signature, SHA256.HashData("other"u8)));
        using var ec = ECDsa.Create();
        ec.ImportSubjectPublicKeyInfo(await client.GetPublicKeyAsync(signature.KeyId), out _);
        Assert.True(ec.VerifyHash(digest, signature.Value));
    }

    [Fact]
    public async Task Envelope_encryption_works_over_the_remote_vault()
    {
        var client = vault.NewClient();
        var name = NewName();
        await client.CreateKeyAsync(name, KeyKind.Wrapping);
        var raw = new MemoryBlobStore();
        var store = new EncryptedBlobStore(raw, new EnvelopeEncryptor(client, new EnvelopeOptions { KeyName = name }));
        var plaintext = RandomNumberGenerator.GetBytes(100_000);
        await store.PutAsync("ckpt", new MemoryStream(plaintext));
        await client.RotateKeyAsync(name);
        Assert.Equal(1, await store.RewrapAllAsync());
        await using var download = await store.GetAsync("ckpt");
        var copy = new MemoryStream();
        await download!.Content.CopyToAsync(copy);
        Assert.Equal(plaintext, copy.ToArray());
    }

    [Fact]
    public async Task A_wrong_token_is_refused_with_the_service_message()
    {
        var client = vault.NewClient(token: "wrong");
        var error = await Assert.ThrowsAsync<KeyVaultException>(() => client.CreateKeyAsync(NewName(), KeyKind.Wrapping));
        Assert.Contains("401", error.Message);
        Assert.Contains("Unauthorized", error.Message);
    }

    [Fact]
    public void Plain_http_vault_uris_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new AzureKeyVaultClient(new Uri("http://127.0.0.1/"), new StaticTokenCredential("t")));
    }
}
