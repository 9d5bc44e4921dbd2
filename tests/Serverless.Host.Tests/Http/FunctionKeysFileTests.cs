using Serverless.Host.Http;

namespace Serverless.Host.Tests.Http;

/// <summary>The keys file: created once with random keys (owner-only), read back on the next start.</summary>
public sealed class FunctionKeysFileTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "serverless-host-keys-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void A_new_keys_file_is_owner_only_and_the_same_keys_come_back_on_the_next_load()
    {
        string path = Path.Combine(_directory, "keys.json");

        FunctionKeys first = FunctionKeys.LoadOrCreate(path);
        string master = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("masterKey").GetString()!;
        FunctionKeys second = FunctionKeys.LoadOrCreate(path);

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        Assert.True(master.Length >= 40);
        Assert.True(first.Allows(AuthLevel.Admin, "Any", master));
        Assert.True(second.Allows(AuthLevel.Function, "Any", master));
        Assert.False(second.Allows(AuthLevel.Function, "Any", master[..^1]));
    }

    [Fact]
    public void Two_generated_key_sets_differ()
    {
        string a = Path.Combine(_directory, "a.json"), b = Path.Combine(_directory, "b.json");
        FunctionKeys.LoadOrCreate(a);
        FunctionKeys.LoadOrCreate(b);

        Assert.NotEqual(File.ReadAllText(a), File.ReadAllText(b));
    }

    [Fact]
    public void A_host_key_opens_function_level_but_not_admin_level()
    {
        var keys = new FunctionKeys("master-0123456789abcdef", ["host-0123456789"], new Dictionary<string, IReadOnlyCollection<string>> { ["Fn"] = ["fn-0123456789"] });

        Assert.True(keys.Allows(AuthLevel.Function, "Fn", "host-0123456789"));
        Assert.True(keys.Allows(AuthLevel.Function, "fn", "fn-0123456789")); // function names are case-insensitive
        Assert.False(keys.Allows(AuthLevel.Function, "Other", "fn-0123456789"));
        Assert.False(keys.Allows(AuthLevel.Admin, "Fn", "host-0123456789"));
        Assert.False(keys.Allows(AuthLevel.Function, "Fn", null));
        Assert.True(keys.Allows(AuthLevel.Anonymous, "Fn", null));
    }

    [Fact]
    public void A_keys_file_that_is_not_json_is_a_one_line_error()
    {
        Directory.CreateDirectory(_directory);
        string path = Path.Combine(_directory, "bad.json");
        File.WriteAllText(path, "{ not json");

        var error = Assert.Throws<HostStartException>(() => FunctionKeys.LoadOrCreate(path));
        Assert.DoesNotContain('\n', error.Message);
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
