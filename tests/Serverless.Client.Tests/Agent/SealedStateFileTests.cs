using System.Security.Cryptography;
using System.Text;
using Serverless.Client.Agent;
using Serverless.Federation.Rounds;
using Serverless.Client.Tests.Commands;

namespace Serverless.Client.Tests.Agent;

/// <summary>The agent's round state is encrypted at rest under its own keyring, atomically replaced, and refused when tampered with.</summary>
public sealed class SealedStateFileTests
{
    /// <summary>A base version long and distinctive enough that ciphertext never holds it by chance.</summary>
    private const string Marker = "v2-plaintext-marker-5c1e9a7f";

    /// <summary>A master-key variable nobody sets: the keyring then uses master.key whatever SERVERLESS_AGENT_MASTER_KEY holds.</summary>
    private const string UnsetMasterKeyVariable = "SERVERLESS_AGENT_TEST_UNSET_MASTER_KEY_3f8d";

    private static AgentRoundState Sample()
    {
        var p = new AgentRoundState { Federation = "fed-a", Round = 3, Restarts = 1 };
        p.Stage(RoundStages.Training).LastSent = RoundPhase.ShareKeys;
        p.Stage(RoundStages.Training).BytesSent = 1234;
        p.Update = new TrainedUpdate(Marker, [0.125f, -3.5f, 1234.5678f], 57, 0.61, 0.2, 0.9);
        return p;
    }

    [Fact]
    public async Task State_round_trips_and_the_file_holds_no_plaintext()
    {
        using var dir = new TempDir();
        using var keys = await AgentKeys.OpenAsync(dir.Path);
        var file = FederationAgent.ProgressFile(dir.Path, "fed-a", keys);
        await file.SaveAsync(Sample());
        var back = await file.LoadAsync();
        Assert.NotNull(back);
        Assert.Equal(3, back.Round);
        Assert.Equal(RoundPhase.ShareKeys, back.Stages[RoundStages.Training].LastSent);
        Assert.Equal(1234, back.Stages[RoundStages.Training].BytesSent);
        Assert.Equal([0.125f, -3.5f, 1234.5678f], back.Update!.Delta);

        var bytes = await File.ReadAllBytesAsync(file.Path);
        var text = Encoding.Latin1.GetString(bytes);
        Assert.DoesNotContain("fed-a", text);
        Assert.DoesNotContain("1234.5678", text);
        Assert.DoesNotContain(Marker, text);
        Assert.StartsWith("SLENV", text);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file.Path));
    }

    [Fact]
    public async Task A_flipped_byte_a_truncation_or_another_agents_file_is_refused()
    {
        using var dir = new TempDir();
        using var keys = await AgentKeys.OpenAsync(dir.Sub("a"));
        var file = FederationAgent.ProgressFile(dir.Sub("a"), "fed-a", keys);
        await file.SaveAsync(Sample());
        var original = await File.ReadAllBytesAsync(file.Path);

        var flipped = (byte[])original.Clone();
        flipped[^20] ^= 0x01;
        await File.WriteAllBytesAsync(file.Path, flipped);
        await Assert.ThrowsAnyAsync<CryptographicException>(() => file.LoadAsync());

        await File.WriteAllBytesAsync(file.Path, original[..^1]);
        await Assert.ThrowsAnyAsync<CryptographicException>(() => file.LoadAsync());

        // The same bytes under another federation's name (the file name is bound into the envelope).
        var other = FederationAgent.ProgressFile(dir.Sub("a"), "fed-b", keys);
        await File.WriteAllBytesAsync(other.Path, original);
        await Assert.ThrowsAnyAsync<CryptographicException>(() => other.LoadAsync());

        // Another agent's keyring cannot open it.
        using var strangerKeys = await AgentKeys.OpenAsync(dir.Sub("b"));
        var stranger = FederationAgent.ProgressFile(dir.Sub("b"), "fed-a", strangerKeys);
        File.Copy(file.Path, stranger.Path);
        await Assert.ThrowsAnyAsync<Exception>(() => stranger.LoadAsync());
    }

    [Fact]
    public async Task Saving_again_replaces_the_state_and_a_missing_file_is_null()
    {
        using var dir = new TempDir();
        using var keys = await AgentKeys.OpenAsync(dir.Path);
        var file = FederationAgent.ProgressFile(dir.Path, "fed-a", keys);
        Assert.Null(await file.LoadAsync());
        var p = Sample();
        await file.SaveAsync(p);
        p.Round = 4;
        p.Finished = true;
        await file.SaveAsync(p);
        var back = await file.LoadAsync();
        Assert.Equal(4, back!.Round);
        Assert.True(back.Finished);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp*"));
    }

    [Fact]
    public async Task The_agent_keyring_refuses_a_master_key_readable_by_others()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = new TempDir();
        // The key source is explicit (master.key, never the environment), so SERVERLESS_AGENT_MASTER_KEY being set does not matter.
        Assert.Null(Environment.GetEnvironmentVariable(UnsetMasterKeyVariable));
        (await AgentKeys.OpenAsync(dir.Path, masterKeyVariable: UnsetMasterKeyVariable)).Dispose();
        File.SetUnixFileMode(Path.Combine(dir.Path, "master.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        await Assert.ThrowsAnyAsync<Exception>(() => AgentKeys.OpenAsync(dir.Path, masterKeyVariable: UnsetMasterKeyVariable));
    }
}
