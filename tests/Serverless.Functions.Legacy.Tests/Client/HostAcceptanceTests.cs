using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Serverless.Functions.Tests.Client;

/// <summary>
/// What the CLI makes, the host accepts: a token issued from the host's data directory opens an
/// auditor-only function of the running app, and <c>audit verify</c> reads the log the app writes.
/// </summary>
public sealed partial class HostAcceptanceTests : IAsyncLifetime
{
    private readonly TempDir _data = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private Process _app = null!;

    public async Task InitializeAsync()
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "Serverless.Functions.dll"), "--port", "0", "--data-dir", _data.Path },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        _app = Process.Start(start)!;
        _app.ErrorDataReceived += (_, _) => { };
        _app.BeginErrorReadLine();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var seen = new StringBuilder();
        while (await _app.StandardOutput.ReadLineAsync(cancel.Token) is { } line)
        {
            seen.AppendLine(line);
            if (ListeningLine().Match(line) is { Success: true } match)
            {
                _ = _app.StandardOutput.ReadToEndAsync(CancellationToken.None); // keep draining so the app never blocks
                _http.BaseAddress = new Uri(match.Groups[1].Value);
                return;
            }
        }
        throw new InvalidOperationException($"the app exited before listening:\n{seen}");
    }

    public async Task DisposeAsync()
    {
        if (!_app.HasExited) _app.Kill(entireProcessTree: true);
        await _app.WaitForExitAsync();
        _app.Dispose();
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

    [GeneratedRegex(@"listening on (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();
}
