using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serverless.Functions.Tests.App;

/// <summary>
/// The README's run command, as a new user meets it: the built app started as its own process on
/// the repository's host.json and the embedded defaults, answering over real HTTP on 127.0.0.1.
/// </summary>
public sealed partial class FunctionAppProcessTests : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("serverless-app-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private Process _app = null!;

    public async Task InitializeAsync()
    {
        var appDll = Path.Combine(AppContext.BaseDirectory, "Serverless.Functions.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { appDll, "--port", "0", "--data-dir", _dataDirectory },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        _app = Process.Start(start)!;
        _app.ErrorDataReceived += (_, _) => { };
        _app.BeginErrorReadLine();
        _http.BaseAddress = await ReadListeningUrlAsync(_app, TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        if (!_app.HasExited) _app.Kill(entireProcessTree: true);
        await _app.WaitForExitAsync();
        _app.Dispose();
        _http.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    [Fact]
    public async Task Health_reports_every_embedded_backend_healthy()
    {
        using var response = await _http.GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var health = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Healthy", health.RootElement.GetProperty("status").GetString());
        var checks = health.RootElement.GetProperty("checks");
        foreach (var backend in new[] { "blob", "queue", "durable" })
            Assert.Equal("Healthy", checks.GetProperty(backend).GetProperty("status").GetString());
        Assert.Equal("sqlite", checks.GetProperty("durable").GetProperty("data").GetProperty("backend").GetString());
        // Everything lives under the data directory the command named.
        Assert.NotEmpty(Directory.EnumerateFileSystemEntries(_dataDirectory));
    }

    [Fact]
    public async Task A_sample_function_answers_and_bad_json_is_a_problem_details_400()
    {
        using var ok = await _http.PostAsJsonAsync("/api/samples/echo", new { message = "hello" });
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("hello", (await ok.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("message").GetString());

        using var bad = await _http.PostAsync("/api/samples/echo", new StringContent("{bad", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        var problem = await bad.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        Assert.False(problem.TryGetProperty("exception", out _));
    }

    [Fact]
    public async Task The_governance_functions_refuse_an_anonymous_caller_with_401()
    {
        using var response = await _http.GetAsync("/api/audit/verify");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task An_unknown_route_is_a_problem_details_404()
    {
        using var response = await _http.GetAsync("/api/no-such-function");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    private static async Task<Uri> ReadListeningUrlAsync(Process app, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var seen = new StringBuilder();
        while (await app.StandardOutput.ReadLineAsync(cancel.Token) is { } line)
        {
            seen.AppendLine(line);
            if (ListeningLine().Match(line) is { Success: true } match)
            {
                // Keep draining stdout so the app never blocks on a full pipe.
                _ = app.StandardOutput.ReadToEndAsync(CancellationToken.None);
                return new Uri(match.Groups[1].Value);
            }
        }
        throw new InvalidOperationException($"the app exited (code {(app.HasExited ? app.ExitCode : -1)}) before listening:\n{seen}");
    }

    [GeneratedRegex(@"listening on (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();
}
