using Serverless.Client.Tests.Commands;

namespace Serverless.Client.Tests.Agent;

/// <summary>The agent and simulate commands refuse bad input with one line and a non-zero exit code.</summary>
public sealed class AgentCommandsTests
{
    [Fact]
    public async Task Run_in_a_directory_without_enrollment_says_to_enroll_first()
    {
        using var dir = new TempDir();
        var run = await CliRunner.RunAsync("agent", "run", "--dir", dir.Path, "--data", dir.Sub("data.csv"));
        Assert.Equal(1, run.ExitCode);
        var line = Assert.Single(run.ErrorLines);
        Assert.Contains("agent enroll", line);
    }

    [Fact]
    public async Task Enroll_refuses_a_key_file_others_can_read_and_plain_http_to_a_remote_host()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = new TempDir();
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "create", "--out", dir.Sub("ca"))).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "client", "--ca", dir.Sub("ca"), "--client-id", "hospital-a", "--out", dir.Sub("ca"))).ExitCode);
        var pfx = Path.Combine(dir.Sub("ca"), "hospital-a.pfx");

        var remote = await CliRunner.RunAsync("agent", "enroll", "--dir", dir.Sub("agent"), "--server", "http://example.org", "--federation", "fed-a", "--certificate", pfx);
        Assert.Equal(1, remote.ExitCode);
        Assert.Contains("refusing plain HTTP", Assert.Single(remote.ErrorLines));

        File.SetUnixFileMode(pfx, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var open = await CliRunner.RunAsync("agent", "enroll", "--dir", dir.Sub("agent"), "--server", "http://127.0.0.1:9", "--federation", "fed-a", "--certificate", pfx);
        Assert.Equal(1, open.ExitCode);
        Assert.Contains("chmod 600", Assert.Single(open.ErrorLines));
    }

    [Fact]
    public async Task Enroll_against_a_server_that_is_not_there_fails_with_one_line()
    {
        using var dir = new TempDir();
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "create", "--out", dir.Sub("ca"))).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "ca", "client", "--ca", dir.Sub("ca"), "--client-id", "hospital-a", "--out", dir.Sub("ca"))).ExitCode);
        // A loopback port that was just free (bound, noted, released): nothing listens, the connection is refused at once.
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var run = await CliRunner.RunAsync("agent", "enroll", "--dir", dir.Sub("agent"), "--server", $"http://127.0.0.1:{port}", "--federation", "fed-a",
            "--certificate", Path.Combine(dir.Sub("ca"), "hospital-a.pfx"));
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error: POST api/federations/fed-a/enrollment/challenge", Assert.Single(run.ErrorLines));
        Assert.False(File.Exists(Path.Combine(dir.Sub("agent"), "agent.json")), "a failed enrollment writes no configuration");
    }

    [Theory]
    [InlineData("--clients", "2")]
    [InlineData("--dropout", "1")]
    [InlineData("--attackers", "4")]
    [InlineData("--records", "5")]
    public async Task Simulate_refuses_options_out_of_range_before_starting_anything(string option, string value)
    {
        var run = await CliRunner.RunAsync("simulate", option, value);
        Assert.Equal(1, run.ExitCode);
        Assert.Single(run.ErrorLines);
    }

    [Fact]
    public async Task An_unknown_option_is_a_usage_error()
    {
        using var dir = new TempDir();
        var run = await CliRunner.RunAsync("agent", "run", "--dir", dir.Path, "--data", dir.Sub("x.csv"), "--dp-typo");
        Assert.Equal(2, run.ExitCode);
        Assert.Single(run.ErrorLines);
    }
}
