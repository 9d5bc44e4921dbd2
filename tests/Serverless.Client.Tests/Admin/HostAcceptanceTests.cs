using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Serverless.Client.Tests.Commands;
using Serverless.Security.Identity;
using Serverless.Testing;

namespace Serverless.Client.Tests.Admin;

/// <summary>
/// The operator's and auditor's flow against a host running on a data directory of its own, as a separate
/// process: the operator's issuer and its tokens live in the operator's directory, the app is given only the
/// issuer's public JWK Set, and <c>admin audit verify | export</c> and <c>admin compliance</c> go over the API.
/// No client command is given, or opens, the host's data directory.
/// </summary>
public sealed class HostAcceptanceTests : IAsyncLifetime
{
    private readonly TempDir _data = new();
    private readonly TempDir _operator = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private LocalHostProcess _app = null!;

    private string Issuer => _operator.Sub("issuer");

    public async Task InitializeAsync()
    {
        var create = await CliRunner.RunAsync("admin", "issuer", "create", "--out", Issuer);
        Assert.True(create.ExitCode == 0, create.Error);
        _app = await LocalHostProcess.StartAsync(HostBuild.LocalHostDll, HostBuild.AppDirectory, _data.Path,
            environment: new Dictionary<string, string> { ["SERVERLESS_TRUSTED_TOKEN_KEYS"] = Path.Combine(Issuer, OfflineTokenIssuer.JwksFileName) });
        _http.BaseAddress = _app.Address;
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        _http.Dispose();
        _data.Dispose();
        _operator.Dispose();
    }

    [Fact]
    public async Task The_operators_issuer_opens_the_host_and_the_admin_commands_verify_export_and_report_over_the_API()
    {
        var auditor = await Token("auditor-1", "auditor");
        using (var response = await GetAsync("/api/audit/verify", auditor))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(body.RootElement.GetProperty("intact").GetBoolean());
        }

        // Valid signature, wrong role: authenticated but forbidden, over HTTP and through the CLI (one line, exit 1).
        var operatorToken = await Token("op-1", "operator");
        using (var response = await GetAsync("/api/audit/verify", operatorToken))
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var refused = await CliRunner.RunAsync("admin", "audit", "verify", "--server", _app.Address.ToString(), "--token", operatorToken);
        Assert.Equal(1, refused.ExitCode);
        Assert.StartsWith("error: server answered 403", Assert.Single(refused.ErrorLines));

        var verify = await CliRunner.RunAsync("admin", "audit", "verify", "--server", _app.Address.ToString(), "--token", auditor);
        Assert.True(verify.ExitCode == 0, verify.Out + verify.Error);
        Assert.StartsWith("audit chain intact", verify.Out);

        var export = await CliRunner.RunAsync("admin", "audit", "export", "--server", _app.Address.ToString(), "--token", auditor);
        Assert.True(export.ExitCode == 0, export.Out + export.Error);
        Assert.Matches(@"^exported through sequence [1-9]\d*", export.Out);

        var compliance = await CliRunner.RunAsync("admin", "compliance", "--server", _app.Address.ToString(), "--token", auditor);
        Assert.Contains(compliance.ExitCode, new[] { 0, 1 });
        Assert.Equal(compliance.ExitCode == 0 ? "compliant" : "not compliant", compliance.OutLines[^1]);
        Assert.Contains(compliance.OutLines, l => l.StartsWith("pass ", StringComparison.Ordinal));

        // A token from an issuer the app was not told about is refused.
        var strangerDir = _operator.Sub("stranger");
        Assert.Equal(0, (await CliRunner.RunAsync("admin", "issuer", "create", "--out", strangerDir)).ExitCode);
        var stranger = await CliRunner.RunAsync("admin", "token", "issue", "--issuer", strangerDir, "--subject", "x", "--role", "auditor");
        using (var response = await GetAsync("/api/audit/verify", stranger.Out.Trim()))
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);

        // The operator's key material stayed in the operator's directory: the host holds only its own files.
        Assert.DoesNotContain(Directory.EnumerateFiles(_data.Path, "*", SearchOption.AllDirectories), f => Path.GetFileName(f).StartsWith("issuer", StringComparison.Ordinal));
    }

    [Fact]
    public void The_client_assembly_references_no_host_runtime_or_storage_assembly()
    {
        var client = typeof(Serverless.Client.ClientProgram).Assembly;
        var referenced = client.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.DoesNotContain(referenced, n => n is "Serverless.Storage" or "Serverless.Host" or "Serverless.TaskHub.Sqlite" or "Serverless.Functions");
        Assert.Contains("Azure.Storage.Queues", referenced); // the partner's queue submission goes through Microsoft's SDK
    }

    private async Task<string> Token(string subject, string role)
    {
        var run = await CliRunner.RunAsync("admin", "token", "issue", "--issuer", Issuer, "--subject", subject, "--role", role);
        Assert.True(run.ExitCode == 0, run.Error);
        return run.Out.Trim();
    }

    private Task<HttpResponseMessage> GetAsync(string path, string token)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return _http.SendAsync(request);
    }
}
