using System.Security.Cryptography;
using Serverless.Security.Keys;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Keys;

public sealed class LocalKeyringTests
{
    private static LocalKeyringOptions Options(TempDirectory dir) => new()
    {
        DataDirectory = dir.Path,
        MasterKeyEnvironmentVariable = "SERVERLESS_TEST_UNSET_" + Guid.NewGuid().ToString("N"),
    };

    [Fact]
    public async Task Wrap_then_unwrap_returns_the_data_key_and_survives_reopen()
    {
        using var dir = new TempDirectory();
        var dataKey = RandomNumberGenerator.GetBytes(32);
        WrappedKey wrapped;
        using (var keyring = LocalKeyring.Open(Options(dir)))
        {
            var created = await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
            wrapped = await keyring.WrapKeyAsync("kek", dataKey);
            Assert.Equal(created.Id, wrapped.KeyId);
            Assert.Equal(KeyAlgorithms.A256GcmKw, wrapped.Algorithm);
            Assert.False(wrapped.Ciphertext.AsSpan().IndexOf(dataKey) >= 0);
        }
        using var reopened = LocalKeyring.Open(Options(dir));
        Assert.Equal(dataKey, await reopened.UnwrapKeyAsync(wrapped));
    }

    [Fact]
    public async Task Tampered_wrapped_key_or_wrong_version_is_rejected()
    {
        using var dir = new TempDirectory();
        using var keyring = LocalKeyring.Open(Options(dir));
        await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        var wrapped = await keyring.WrapKeyAsync("kek", RandomNumberGenerator.GetBytes(32));
        var tampered = wrapped.Ciphertext.ToArray();
        tampered[20] ^= 1;
        await Assert.ThrowsAnyAsync<CryptographicException>(() => keyring.UnwrapKeyAsync(wrapped with { Ciphertext = tampered }));

        var v2 = await keyring.RotateKeyAsync("kek");
        // The key id is authenticated data: the same bytes presented as another version do not unwrap.
        await Assert.ThrowsAnyAsync<CryptographicException>(() => keyring.UnwrapKeyAsync(wrapped with { KeyId = v2.Id }));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => keyring.UnwrapKeyAsync(wrapped with { KeyId = new KeyId("kek", "nope") }));
    }

    [Fact]
    public async Task Rotation_makes_a_new_current_version_and_old_ones_still_unwrap_until_disabled()
    {
        using var dir = new TempDirectory();
        using var keyring = LocalKeyring.Open(Options(dir));
        var v1 = await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        var key = RandomNumberGenerator.GetBytes(32);
        var old = await keyring.WrapKeyAsync("kek", key);
        var v2 = await keyring.RotateKeyAsync("kek");
        Assert.NotEqual(v1.Id, v2.Id);
        Assert.Equal(v2.Id, (await keyring.GetCurrentVersionAsync("kek"))!.Id);
        Assert.Equal(v2.Id, (await keyring.WrapKeyAsync("kek", key)).KeyId);
        Assert.Equal(key, await keyring.UnwrapKeyAsync(old));
        Assert.Equal([v1.Id, v2.Id], (await keyring.ListVersionsAsync("kek")).Select(v => v.Id));

        await keyring.DisableVersionAsync(v1.Id);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => keyring.UnwrapKeyAsync(old));
        var versions = await keyring.ListVersionsAsync("kek");
        Assert.False(versions[0].Enabled);
        Assert.True(versions[1].Enabled);

        await keyring.DisableVersionAsync(v2.Id);
        Assert.Null(await keyring.GetCurrentVersionAsync("kek"));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => keyring.WrapKeyAsync("kek", key));
    }

    [Fact]
    public async Task Sign_and_verify_with_ES256_and_the_exported_public_key()
    {
        using var dir = new TempDirectory();
        using var keyring = LocalKeyring.Open(Options(dir));
        await keyring.CreateKeyAsync("signer", KeyKind.Signing);
        var digest = SHA256.HashData("checkpoint"u8);
        var signature = await keyring.SignAsync("signer", digest);
        Assert.Equal(KeyAlgorithms.Es256, signature.Algorithm);
        Assert.Equal(64, signature.Value.Length);
        Assert.True(await keyring.VerifyAsync(signature, digest));
        Assert.False(await keyring.VerifyAsync(signature, SHA256.HashData("other"u8)));

        using var publicKey = ECDsa.Create();
        publicKey.ImportSubjectPublicKeyInfo(await keyring.GetPublicKeyAsync(signature.KeyId), out _);
        Assert.True(publicKey.VerifyHash(digest, signature.Value, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));

        // Wrapping keys do not sign and signing keys do not wrap.
        await Assert.ThrowsAsync<KeyVaultException>(() => keyring.WrapKeyAsync("signer", new byte[32]));
        await Assert.ThrowsAsync<ArgumentException>(() => keyring.SignAsync("signer", new byte[31]));
    }

    [Fact]
    public async Task Files_are_created_owner_only()
    {
        using var dir = new TempDirectory();
        using (var keyring = LocalKeyring.Open(Options(dir)))
            await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.File("master.key")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.File("keyring.bin")));
    }

    [Theory]
    [InlineData("keyring.bin", "644")]
    [InlineData("keyring.bin", "604")]
    [InlineData("master.key", "640")]
    [InlineData("master.key", "700")]
    public async Task Refuses_to_start_when_a_file_is_wider_than_0600(string file, string octalMode)
    {
        using var dir = new TempDirectory();
        using (var keyring = LocalKeyring.Open(Options(dir)))
            await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        File.SetUnixFileMode(dir.File(file), (UnixFileMode)Convert.ToInt32(octalMode, 8));
        var error = Assert.Throws<KeyVaultException>(() => LocalKeyring.Open(Options(dir)));
        Assert.Contains("wider than 0600", error.Message);
        Assert.Contains(file, error.Message);
    }

    [Fact]
    public async Task Master_key_from_the_environment_replaces_the_key_file_and_a_wrong_key_fails()
    {
        using var dir = new TempDirectory();
        var variable = "SERVERLESS_TEST_MK_" + Guid.NewGuid().ToString("N");
        var options = Options(dir) with { MasterKeyEnvironmentVariable = variable };
        Environment.SetEnvironmentVariable(variable, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        try
        {
            using (var keyring = LocalKeyring.Open(options))
                await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
            Assert.False(File.Exists(dir.File("master.key")));

            Environment.SetEnvironmentVariable(variable, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            Assert.Throws<KeyVaultException>(() => LocalKeyring.Open(options));

            Environment.SetEnvironmentVariable(variable, Convert.ToBase64String(new byte[16]));
            Assert.Contains("32 bytes", Assert.Throws<KeyVaultException>(() => LocalKeyring.Open(options)).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    [Fact]
    public async Task A_tampered_keyring_file_does_not_open()
    {
        using var dir = new TempDirectory();
        using (var keyring = LocalKeyring.Open(Options(dir)))
            await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        var bytes = File.ReadAllBytes(dir.File("keyring.bin"));
        bytes[^20] ^= 0x40;
        File.WriteAllBytes(dir.File("keyring.bin"), bytes);
        Assert.Throws<KeyVaultException>(() => LocalKeyring.Open(Options(dir)));
    }

    [Fact]
    public async Task Names_are_validated_and_duplicates_refused()
    {
        using var dir = new TempDirectory();
        using var keyring = LocalKeyring.Open(Options(dir));
        await Assert.ThrowsAsync<ArgumentException>(() => keyring.CreateKeyAsync("bad/name", KeyKind.Wrapping));
        await keyring.CreateKeyAsync("kek", KeyKind.Wrapping);
        await Assert.ThrowsAsync<KeyVaultException>(() => keyring.CreateKeyAsync("kek", KeyKind.Signing));
        await Assert.ThrowsAsync<KeyNotFoundException>(() => keyring.RotateKeyAsync("missing"));
    }

    [Fact]
    public async Task Two_processes_sharing_a_data_directory_never_lose_each_others_keys()
    {
        using var dir = new TempDirectory();
        using var a = LocalKeyring.Open(Options(dir));
        using var b = LocalKeyring.Open(Options(dir)); // opened before either created anything: its view is empty
        await a.CreateKeyAsync("kek-a", KeyKind.Wrapping);
        await b.CreateKeyAsync("kek-b", KeyKind.Wrapping);   // must not overwrite kek-a
        await Assert.ThrowsAsync<KeyVaultException>(() => b.CreateKeyAsync("kek-a", KeyKind.Wrapping));

        var key = RandomNumberGenerator.GetBytes(32);
        var wrappedByA = await a.WrapKeyAsync("kek-a", key);
        Assert.Equal(key, await b.UnwrapKeyAsync(wrappedByA));

        var v2 = await a.RotateKeyAsync("kek-b");            // a rotates a key b created
        Assert.Equal(v2.Id, (await b.WrapKeyAsync("kek-b", key)).KeyId); // b wraps with the new version at once
        await b.DisableVersionAsync(wrappedByA.KeyId);
        await Assert.ThrowsAsync<KeyNotFoundException>(() => a.UnwrapKeyAsync(wrappedByA));

        using var reopened = LocalKeyring.Open(Options(dir));
        Assert.NotNull(await reopened.GetCurrentVersionAsync("kek-b"));
        Assert.Null(await reopened.GetCurrentVersionAsync("kek-a"));
        Assert.Equal(2, (await reopened.ListVersionsAsync("kek-b")).Count);
    }

    [Fact]
    public async Task Concurrent_creates_from_two_instances_all_survive()
    {
        using var dir = new TempDirectory();
        using var a = LocalKeyring.Open(Options(dir));
        using var b = LocalKeyring.Open(Options(dir));
        await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() => (i % 2 == 0 ? a : b).CreateKeyAsync($"k{i}", KeyKind.Wrapping))));
        using var reopened = LocalKeyring.Open(Options(dir));
        for (var i = 0; i < 20; i++) Assert.NotNull(await reopened.GetCurrentVersionAsync($"k{i}"));
    }
}
