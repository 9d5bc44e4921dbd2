using Serverless.Security.Compliance;

namespace Serverless.Functions.Hosting;

/// <summary>A module's own lines in the compliance report (GET /api/compliance), beside the security layer's.</summary>
public interface IComplianceCheckSource
{
    Task<IReadOnlyList<ComplianceCheck>> ChecksAsync(CancellationToken cancellationToken);
}
