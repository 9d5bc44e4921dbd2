using Serverless.Security.Keys;
using Serverless.Security.Pseudonymization;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Pseudonymization;

public sealed class PseudonymizerTests(KeyringFixture keys) : IClassFixture<KeyringFixture>
{
    [Fact]
    public async Task Tokens_are_deterministic_normalized_domain_separated_and_keyed()
    {
        var kek = await keys.NewKeyAsync(KeyKind.Wrapping);
        var store = new MemoryBlobStore();
        using var p = await Pseudonymizer.OpenAsync(keys.Keyring, kek, store);
        var token = p.Tokenize("patient-name", "Jane Doe");
        Assert.StartsWith("pt_", token);
        Assert.Equal(25, token.Length); // "pt_" + 22 base64url chars of 16 bytes
        Assert.Equal(token, p.Tokenize("patient-name", "  jane   DOE "));
        Assert.NotEqual(token, p.Tokenize("doctor-name", "Jane Doe"));
        Assert.NotEqual(token, p.Tokenize("patient-name", "Jane Doe2"));
        Assert.DoesNotContain("Jane", token, StringComparison.OrdinalIgnoreCase);

        // Same stored key after reopening: tokens stay joinable across runs.
        using (var again = await Pseudonymizer.OpenAsync(keys.Keyring, kek, store))
            Assert.Equal(token, again.Tokenize("patient-name", "Jane Doe"));

        // Another key (another deployment) gives unrelated tokens.
        using var other = await Pseudonymizer.OpenAsync(keys.Keyring, kek, new MemoryBlobStore());
        Assert.NotEqual(token, other.Tokenize("patient-name", "Jane Doe"));
    }

    [Fact]
    public async Task The_key_is_stored_only_wrapped()
    {
        var kek = await keys.NewKeyAsync(KeyKind.Wrapping);
        var store = new MemoryBlobStore();
        using var p = await Pseudonymizer.OpenAsync(keys.Keyring, kek, store);
        var stored = System.Text.Encoding.UTF8.GetString(store.GetRaw("keys/pseudonymization.key.json"));
        Assert.Contains("A256GCMKW", stored);
        // Known answer: HMAC-SHA256 over "domain\0VALUE" with a fixed key (RFC 2104 construction via .NET).
        using var fixedKey = Pseudonymizer.FromKey(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var expected = System.Security.Cryptography.HMACSHA256.HashData(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(), "mrn\0A-17"u8.ToArray())[..16];
        Assert.Equal("pt_" + System.Buffers.Text.Base64Url.EncodeToString(expected), fixedKey.Tokenize("mrn", " a-17 "));
    }
}
