using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Serverless.Testing;

namespace Serverless.Functions.Tests.App;

/// <summary>
/// The README's run command, as a new user meets it: the local host started as its own process on the
/// app's build output and the embedded defaults, answering over real HTTP on 127.0.0.1.
/// </summary>
public sealed class FunctionAppProcessTests : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("serverless-app-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private LocalHostProcess _app = null!;

    public async Task InitializeAsync()
    {
        _app = await LocalHostProcess.StartAsync(FunctionAppHost.LocalHostDll, FunctionAppHost.AppDirectory, _dataDirectory);
        _http.BaseAddress = _app.Address;
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        _http.Dispose();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    [Fact]
    public async Task SIGTERM_stops_the_host_and_its_worker_with_exit_code_0()
    {
        using (var response = await _http.GetAsync("/api/health")) Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(0, await _app.StopAsync(TimeSpan.FromSeconds(60)));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => _http.GetAsync("/api/health"));
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
        // Everything lives under the data directory the command named.
        Assert.NotEmpty(Directory.EnumerateFileSystemEntries(_dataDirectory));
    }

    [Fact]
    public async Task Bad_json_is_a_problem_details_400_without_internals()
    {
        // Enrollment is anonymous (it proves a certificate key itself), so it needs no token to show the error path.
        using var bad = await _http.PostAsync("/api/federations/none/enrollments", new StringContent("{bad", Encoding.UTF8, "application/json"));
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
}
