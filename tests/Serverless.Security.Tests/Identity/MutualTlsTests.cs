using System.Net;
using System.Net.Http.Json;
using System.Security.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Security.Authorization;
using Serverless.Security.Identity;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Identity;

/// <summary>
/// End to end over real TLS: Kestrel on 127.0.0.1 requiring client certificates from the dev CA,
/// HttpClient presenting one and trusting the server only through the dev CA (no validation turned off).
/// </summary>
public sealed class MutualTlsTests : IAsyncLifetime
{
    private readonly DevCertificateAuthority _ca = DevCertificateAuthority.Create("Test Federation CA");
    private readonly DevCertificateAuthority _otherCa = DevCertificateAuthority.Create("Someone Else's CA");
    private readonly ClientCertificateRegistry _registry = new();
    private WebApplication _app = null!;
    private SecuredTestApp _tokens = null!; // only for its keyring-backed signing keys
    private Uri _baseUri = null!;

    private sealed record Whoami(string Subject, string Tenant, string Method, string Protocol, string[] Roles);

    public async Task InitializeAsync()
    {
        _tokens = await SecuredTestApp.StartAsync();
        var serverCertificate = _ca.IssueServerCertificate();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
            listen.UseHttps(https => KestrelMutualTls.Configure(https, serverCertificate, _ca.Trust))));
        builder.Services.AddServerlessAuthentication(_tokens.TokenOptions, _tokens.SigningKeys, _ca.Trust, _registry);
        builder.Services.AddServerlessAuthorization();
        var app = builder.Build();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapPost("/api/federations/{federationId}/updates", (HttpContext c) => Results.Ok(new Whoami(
                c.User.FindFirst("sub")!.Value, c.User.FindFirst("tenant")!.Value, c.User.FindFirst("amr")!.Value,
                c.Features.Get<ITlsHandshakeFeature>()!.Protocol.ToString(), c.User.FindAll("role").Select(r => r.Value).ToArray())))
            .WithMetadata(new RequirePermissionAttribute(Permissions.RoundParticipate) { ResourceKind = ResourceRef.Federation, ResourceParameter = "federationId" });
        await app.StartAsync();
        app.Services.GetRequiredService<InMemoryResourceOwnership>().Grant(new ResourceRef(ResourceRef.Federation, "fed-1"), "hospital-a");
        _app = app;
        _baseUri = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _tokens.DisposeAsync();
        _ca.Dispose();
        _otherCa.Dispose();
    }

    private HttpClient Client(System.Security.Cryptography.X509Certificates.X509Certificate2? clientCertificate, CertificateTrust? serverTrust = null) =>
        new(MutualTls.CreateClientHandler(serverTrust ?? _ca.Trust, clientCertificate)) { BaseAddress = _baseUri };

    [Fact]
    public async Task A_registered_client_certificate_authenticates_over_TLS_1_3_as_its_client()
    {
        var certificate = _ca.IssueClientCertificate("hospital-a-agent");
        _registry.Register(certificate, new ClientIdentity("hospital-a-agent", "hospital-a", [Roles.FederationClient]));
        using var client = Client(certificate);
        var response = await client.PostAsync("/api/federations/fed-1/updates", null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var who = (await response.Content.ReadFromJsonAsync<Whoami>())!;
        Assert.Equal(new[] { "hospital-a-agent", "hospital-a", "mtls", "Tls13" }, new[] { who.Subject, who.Tenant, who.Method, who.Protocol });
        Assert.Equal(["federation-client"], who.Roles);

        // Same client, another hospital's federation: authenticated but refused.
        Assert.Equal(HttpStatusCode.Forbidden, (await client.PostAsync("/api/federations/fed-2/updates", null)).StatusCode);
    }

    [Fact]
    public async Task A_trusted_but_unregistered_certificate_is_401()
    {
        using var client = Client(_ca.IssueClientCertificate("stranger"));
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsync("/api/federations/fed-1/updates", null)).StatusCode);
    }

    [Fact]
    public async Task Certificates_from_another_CA_and_connections_without_one_fail_the_handshake()
    {
        var foreign = _otherCa.IssueClientCertificate("hospital-a-agent");
        _registry.Register(foreign, new ClientIdentity("hospital-a-agent", "hospital-a", [Roles.FederationClient])); // even if registered
        using (var client = Client(foreign))
            await Assert.ThrowsAsync<HttpRequestException>(() => client.PostAsync("/api/federations/fed-1/updates", null));
        using (var client = Client(null))
            await Assert.ThrowsAsync<HttpRequestException>(() => client.PostAsync("/api/federations/fed-1/updates", null));
    }

    [Fact]
    public async Task The_client_refuses_a_server_that_does_not_chain_to_its_trust_root()
    {
        var certificate = _ca.IssueClientCertificate("hospital-a-agent-2");
        using var client = Client(certificate, serverTrust: _otherCa.Trust);
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => client.PostAsync("/api/federations/fed-1/updates", null));
        Assert.IsType<AuthenticationException>(error.InnerException);
    }

    [Fact]
    public void Dev_CA_certificates_have_the_expected_shape_and_validate_only_for_their_usage()
    {
        using var server = _ca.IssueServerCertificate();
        using var client = _ca.IssueClientCertificate("c-1");
        Assert.True(_ca.Trust.IsTrusted(server, DevCertificateAuthority.ServerAuthOid, out _));
        Assert.False(_ca.Trust.IsTrusted(server, DevCertificateAuthority.ClientAuthOid, out _));
        Assert.True(_ca.Trust.IsTrusted(client, DevCertificateAuthority.ClientAuthOid, out _));
        Assert.False(_otherCa.Trust.IsTrusted(client, DevCertificateAuthority.ClientAuthOid, out var reason));
        Assert.NotEmpty(reason);
        Assert.Equal("CN=c-1, O=Serverless Federation Client", client.Subject);
        Assert.Contains("127.0.0.1", server.GetNameInfo(System.Security.Cryptography.X509Certificates.X509NameType.DnsName, false) + string.Join(",", server.Extensions.OfType<System.Security.Cryptography.X509Certificates.X509SubjectAlternativeNameExtension>().SelectMany(e => e.EnumerateIPAddresses())));
    }

    [Fact]
    public void The_CA_saves_owner_only_and_loads_back()
    {
        using var dir = new TempDirectory();
        _ca.Save(dir.File("ca.pfx"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.File("ca.pfx")));
        using var loaded = DevCertificateAuthority.Load(dir.File("ca.pfx"));
        using var issued = loaded.IssueClientCertificate("x");
        Assert.True(_ca.Trust.IsTrusted(issued, DevCertificateAuthority.ClientAuthOid, out _));
        File.SetUnixFileMode(dir.File("ca.pfx"), (UnixFileMode)Convert.ToInt32("644", 8));
        Assert.Throws<Serverless.Security.Keys.KeyVaultException>(() => DevCertificateAuthority.Load(dir.File("ca.pfx")));
    }
}
