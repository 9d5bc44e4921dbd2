using Serverless.Host.Http;

namespace Serverless.Host.Tests;

/// <summary>What the host says when it cannot run a directory.</summary>
public sealed class LocalHostStartTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("serverless-host-start-").FullName;

    [Fact]
    public async Task A_directory_that_is_not_a_worker_build_output_is_a_one_line_error()
    {
        var error = await Assert.ThrowsAsync<HostStartException>(() => LocalHost.StartAsync(Options()));

        Assert.Contains("worker.config.json", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task A_host_json_of_another_version_is_refused()
    {
        File.WriteAllText(Path.Combine(_directory, "host.json"), """{ "version": "1.0" }""");

        var error = await Assert.ThrowsAsync<HostStartException>(() => LocalHost.StartAsync(Options()));

        Assert.Equal("host.json: version must be \"2.0\"", error.Message);
    }

    [Fact]
    public async Task A_worker_that_exits_before_it_connects_is_reported_as_such()
    {
        // A worker.config.json whose "worker" is a script that exits at once.
        string script = Path.Combine(_directory, "exit.sh");
        File.WriteAllText(script, "exit 3\n");
        File.WriteAllText(Path.Combine(_directory, "worker.config.json"),
            """{ "description": { "defaultExecutablePath": "/bin/sh", "defaultWorkerPath": "exit.sh" } }""");

        var error = await Assert.ThrowsAsync<HostStartException>(() => LocalHost.StartAsync(Options()));

        Assert.Contains("exited before it connected", error.Message);
    }

    private LocalHostOptions Options() => new()
    {
        AppDirectory = _directory,
        HttpPort = 0,
        Keys = FunctionKeys.Generate(),
        StartTimeout = TimeSpan.FromMinutes(1),
    };

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
