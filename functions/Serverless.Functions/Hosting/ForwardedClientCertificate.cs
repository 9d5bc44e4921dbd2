using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace Serverless.Functions.Hosting;

/// <summary>
/// The caller's TLS client certificate, which the front end terminating TLS (Azure's, or the local host)
/// forwards in <see cref="Header"/>: ASP.NET Core's certificate forwarding middleware turns it back into
/// the connection's client certificate, first in the worker's HTTP pipeline, so the certificate handler
/// reads it as if TLS ended here. Only the front end can reach the worker, and it drops any value a
/// caller sends.
/// </summary>
internal sealed class ForwardedClientCertificate : IStartupFilter
{
    /// <summary>The header of App Service and Azure Functions (base64 DER), and the local host's.</summary>
    public const string Header = "X-ARR-ClientCert";

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.UseCertificateForwarding();
        next(app);
    };
}
