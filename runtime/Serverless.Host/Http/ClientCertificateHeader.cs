using Microsoft.AspNetCore.Http;

namespace Serverless.Host.Http;

/// <summary>
/// The TLS client certificate as the Functions front end hands it to the app: the header
/// <c>X-ARR-ClientCert</c>, the certificate's DER in base64. Only the host may set it. A caller's own
/// value is dropped on every path to the worker, so over plain HTTP, or without a certificate, the app
/// sees none.
/// </summary>
public static class ClientCertificateHeader
{
    public const string Name = "X-ARR-ClientCert";

    /// <summary>The header's value for this connection, or null when the caller presented no certificate.</summary>
    public static string? ValueOf(HttpContext context) =>
        context.Connection.ClientCertificate is { } certificate ? Convert.ToBase64String(certificate.RawData) : null;
}
