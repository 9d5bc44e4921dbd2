using Serverless.Security.Keys;

namespace Serverless.Security.Tests.Support;

/// <summary>A local keyring in a temp directory, with a fresh key name per call so tests never share key state.</summary>
public sealed class KeyringFixture : IDisposable
{
    private readonly TempDirectory _dir = new();

    public KeyringFixture()
    {
        Keyring = LocalKeyring.Open(new LocalKeyringOptions
        {
            DataDirectory = _dir.Path,
            MasterKeyEnvironmentVariable = "SERVERLESS_TEST_UNSET_" + Guid.NewGuid().ToString("N"),
        });
    }

    public LocalKeyring Keyring { get; }

    public async Task<string> NewKeyAsync(KeyKind kind)
    {
        var name = (kind == KeyKind.Wrapping ? "kek-" : "sig-") + Guid.NewGuid().ToString("N")[..12];
        await Keyring.CreateKeyAsync(name, kind);
        return name;
    }

    public void Dispose()
    {
        Keyring.Dispose();
        _dir.Dispose();
    }
}
