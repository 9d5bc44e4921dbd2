using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Serverless.Functions.Tests.App;
using Serverless.Testing;

namespace Serverless.Functions.Tests.Client;

/// <summary>
/// What the CLI makes, the host accepts: a token issued from the host's data directory opens an
/// auditor-only function of the running app, and <c>audit verify</c> reads the log the app writes.
/// </summary>
public sealed class HostAcceptanceTests : IAsyncLifetime
{
    private readonly TempDir _data = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private LocalHostProcess _app = null!;

    public async Task InitializeAsync()
    {
        _app = await LocalHostProcess.StartAsync(FunctionAppHost.LocalHostDll, FunctionAppHost.AppDirectory, _data.Path);
        _http.BaseAddress = _app.Address;
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        _http.Dispose();
        _data.Dispose();
    }

    [Fact]
    public async Task A_CLI_token_opens_the_running_host_and_the_CLI_verifies_its_audit_log()
    {
        var auditor = await CliRunner.RunAsync("token", "issue", "--data-dir", _data.Path, "--subject", "auditor-1", "--role", "auditor");
        Assert.True(auditor.ExitCode == 0, auditor.Error);
        using (var response = await GetAsync("/api/audit/verify", auditor.Out.Trim()))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(body.RootElement.GetProperty("intact").GetBoolean());
        }

        // Valid signature, wrong role: authenticated but forbidden.
        var operatorToken = await CliRunner.RunAsync("token", "issue", "--data-dir", _data.Path, "--subject", "op-1", "--role", "operator");
        using (var response = await GetAsync("/api/audit/verify", operatorToken.Out.Trim()))
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);

        var verify = await CliRunner.RunAsync("audit", "verify", "--data-dir", _data.Path);
        Assert.True(verify.ExitCode == 0, verify.Out + verify.Error);
        Assert.StartsWith("audit chain intact", verify.Out);
    }

    private Task<HttpResponseMessage> GetAsync(string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return _http.SendAsync(request);
    }
}
