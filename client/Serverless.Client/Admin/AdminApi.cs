using System.Net.Http.Headers;
using Serverless.Contracts.Governance;

namespace Serverless.Client.Admin;

/// <summary>One rule of the compliance report and its finding.</summary>
internal sealed record ComplianceRule(string Rule, bool Passed, string Finding);

/// <summary>The host's answer to <c>GET api/compliance</c> (the role grants are left out: the CLI prints the rules).</summary>
internal sealed record ComplianceSummary(DateTimeOffset GeneratedAt, bool Compliant, IReadOnlyList<ComplianceRule> Checks);

/// <summary>The operator's and auditor's calls: audit verification and export, the compliance report. HTTP only.</summary>
internal sealed class AdminApi(HttpClient http) : IDisposable
{
    /// <param name="caPem">The CA of the host's TLS certificate, when it is not in the system's roots (the dev CA).</param>
    public static AdminApi Create(Uri server, string token, string? caPem, TimeSpan? timeout = null)
    {
        var trust = caPem is null ? null : new CertificateTrust(X509Certificate2.CreateFromPem(File.ReadAllText(caPem)));
        var http = ClientHttp.Create("admin", server, timeout ?? TimeSpan.FromMinutes(2), trust);
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return new AdminApi(http);
    }

    public async Task<AuditVerification> VerifyAuditAsync(CancellationToken cancellationToken) =>
        await ApiResponses.ReadContractAsync<AuditVerification>(await http.GetAsync(GovernanceRoutes.Path(GovernanceRoutes.AuditVerify), cancellationToken), cancellationToken);

    /// <summary>Exports the trail and returns the last sequence number exported.</summary>
    public async Task<long> ExportAuditAsync(CancellationToken cancellationToken) =>
        (await ApiResponses.ReadContractAsync<AuditExportReceipt>(await http.PostAsync(GovernanceRoutes.Path(GovernanceRoutes.AuditExport), content: null, cancellationToken),
            cancellationToken)).ExportedThrough;

    public async Task<ComplianceSummary> ComplianceAsync(CancellationToken cancellationToken) =>
        await ApiResponses.ReadContractAsync<ComplianceSummary>(await http.GetAsync(GovernanceRoutes.Path(GovernanceRoutes.Compliance), cancellationToken), cancellationToken);

    public void Dispose() => http.Dispose();
}
