using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Serverless.Client.Commands;
using Serverless.Security.Identity;

namespace Serverless.Client.Admin;

/// <summary>The first audit-chain break the host found.</summary>
internal sealed record AuditBreakInfo(string Kind, long Sequence, string Message);

/// <summary>The host's answer to <c>GET api/audit/verify</c>.</summary>
internal sealed record AuditVerification(bool Intact, long EntriesChecked, int CheckpointsChecked, long LastSequence, AuditBreakInfo? FirstBreak, string Summary);

/// <summary>One rule of the compliance report and its finding.</summary>
internal sealed record ComplianceRule(string Rule, bool Passed, string Finding);

/// <summary>The host's answer to <c>GET api/compliance</c> (the role grants are left out: the CLI prints the rules).</summary>
internal sealed record ComplianceSummary(DateTimeOffset GeneratedAt, bool Compliant, IReadOnlyList<ComplianceRule> Checks);

/// <summary>The operator's and auditor's calls: audit verification and export, the compliance report. HTTP only.</summary>
internal sealed class AdminApi(HttpClient http) : IDisposable
{
    private static readonly JsonSerializerOptions Json = JsonSerializerOptions.Web;

    /// <param name="caPem">The CA of the host's TLS certificate, when it is not in the system's roots (the dev CA).</param>
    public static AdminApi Create(Uri server, string token, string? caPem, TimeSpan? timeout = null)
    {
        var trust = caPem is null ? null : new CertificateTrust(X509Certificate2.CreateFromPem(File.ReadAllText(caPem)));
        var http = ClientHttp.Create("admin", server, timeout ?? TimeSpan.FromMinutes(2), trust);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return new AdminApi(http);
    }

    public async Task<AuditVerification> VerifyAuditAsync(CancellationToken cancellationToken) =>
        await GetAsync<AuditVerification>("api/audit/verify", cancellationToken);

    /// <summary>Exports the trail and returns the last sequence number exported.</summary>
    public async Task<long> ExportAuditAsync(CancellationToken cancellationToken)
    {
        using var response = await http.PostAsync("api/audit/export", content: null, cancellationToken);
        await ApiResponses.EnsureSuccessAsync(response, cancellationToken);
        var body = await response.Content.ReadFromJsonElementAsync(cancellationToken);
        return body.ValueKind == JsonValueKind.Object && body.TryGetProperty("exportedThrough", out var last) && last.TryGetInt64(out var sequence)
            ? sequence
            : throw new InvalidDataException("the host's export answer has no exportedThrough");
    }

    public async Task<ComplianceSummary> ComplianceAsync(CancellationToken cancellationToken) =>
        await GetAsync<ComplianceSummary>("api/compliance", cancellationToken);

    private async Task<T> GetAsync<T>(string path, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(path, cancellationToken);
        await ApiResponses.EnsureSuccessAsync(response, cancellationToken);
        return await response.Content.ReadFromJsonAsync<T>(Json, cancellationToken)
            ?? throw new InvalidDataException($"the host answered {path} with an empty body");
    }

    public void Dispose() => http.Dispose();
}
