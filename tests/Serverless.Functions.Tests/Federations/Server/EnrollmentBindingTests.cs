using System.Net;
using System.Security.Cryptography.X509Certificates;
using Serverless.Federation.Rounds;
using Serverless.Security.Audit;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Security.Identity;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// Enrollment binds a client's token to the federation and to its certificate; an empty roster admits
/// nobody unless the federation is explicitly open; an operator can remove a client, which ends its
/// tokens and revokes its certificate for the federation.
/// </summary>
[Collection(FederationServerCollection.Name)]
public sealed class EnrollmentBindingTests(CompletedRoundFixture fixture)
{
    private FederationTestHost Host => fixture.Host;

    private async Task<HttpResponseMessage> EnrollAsync(string fed, string clientId, X509Certificate2 cert)
    {
        using var c = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Challenge(fed), null);
        var challenge = await c.ReadAsync<EnrollmentChallenge>();
        using var key = cert.GetECDsaPrivateKey()!;
        return await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Enroll(fed), null,
            new EnrollmentRequest(clientId, cert.ExportCertificatePem(), challenge.Nonce, EnrollmentProof.Sign(key, fed, clientId, challenge.Nonce)));
    }

    private async Task<string> TokenAsync(string fed, string clientId, X509Certificate2 cert)
    {
        using var r = await EnrollAsync(fed, clientId, cert);
        Assert.True(r.StatusCode == HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        return (await r.ReadAsync<EnrollmentResponse>()).Token;
    }

    [Fact]
    public async Task An_empty_roster_admits_nobody_unless_the_federation_is_explicitly_open()
    {
        using var cert = TestAgent.IssueCertificate(Host.DataDirectory, "lone-lab");
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig("roster-closed") with { OpenEnrollment = false });
        using (var r = await EnrollAsync("roster-closed", "lone-lab", cert))
        {
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
            Assert.Contains("openEnrollment", await r.Content.ReadAsStringAsync());
        }
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig("roster-open") with { OpenEnrollment = true });
        using (var r = await EnrollAsync("roster-open", "lone-lab", cert)) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
    }

    [Fact]
    public async Task A_client_token_is_bound_to_its_federation_and_certificate()
    {
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig("bind-a"));
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig("bind-b"));
        using var cert = TestAgent.IssueCertificate(Host.DataDirectory, "twin-lab");
        var tokenA = await TokenAsync("bind-a", "twin-lab", cert);
        var tokenB = await TokenAsync("bind-b", "twin-lab", cert);

        // Enrolled in both with the same client id (the tenant): A's token still does not act in B.
        using (var own = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task("bind-a", 1), tokenA)) Assert.NotEqual(HttpStatusCode.Forbidden, own.StatusCode);
        using (var cross = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task("bind-b", 1), tokenA))
        {
            Assert.Equal(HttpStatusCode.Forbidden, cross.StatusCode);
            Assert.Contains("not issued for federation 'bind-b'", await cross.Content.ReadAsStringAsync());
        }
        using (var cross = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Advertise("bind-b", 1, RoundStages.Training), tokenA, new AdvertiseKeysUpload(new(1, [1], [1], []))))
            Assert.Equal(HttpStatusCode.Forbidden, cross.StatusCode);
        using (var own = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task("bind-b", 1), tokenB)) Assert.NotEqual(HttpStatusCode.Forbidden, own.StatusCode);

        // A token that names the right federation but another certificate (a client id bound to a thumbprint it does not hold) is refused.
        var forged = await Host.Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest("twin-lab", ["federation-client"], "twin-lab", null,
            new Dictionary<string, string> { [SecurityClaims.Federation] = "bind-a", [SecurityClaims.CertificateThumbprint] = new string('0', 64) }));
        using (var other = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task("bind-a", 1), forged)) Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
    }

    [Fact]
    public async Task A_removed_client_loses_its_token_and_its_certificate_is_revoked()
    {
        const string fed = "remove-client";
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed));
        using var cert = TestAgent.IssueCertificate(Host.DataDirectory, "gone-lab");
        using var other = TestAgent.IssueCertificate(Host.DataDirectory, "stay-lab");
        var token = await TokenAsync(fed, "gone-lab", cert);
        await TokenAsync(fed, "stay-lab", other);
        using (var before = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task(fed, 1), token)) Assert.NotEqual(HttpStatusCode.Forbidden, before.StatusCode);

        using (var asClient = await Host.Http.SendAsync(HttpMethod.Delete, RoundRoutes.Federation(fed) + "/clients/gone-lab", token)) Assert.Equal(HttpStatusCode.Forbidden, asClient.StatusCode);
        using (var remove = await Host.Http.SendAsync(HttpMethod.Delete, RoundRoutes.Federation(fed) + "/clients/gone-lab", fixture.OperatorToken))
            Assert.True(remove.StatusCode == HttpStatusCode.NoContent, await remove.Content.ReadAsStringAsync());
        using (var again = await Host.Http.SendAsync(HttpMethod.Delete, RoundRoutes.Federation(fed) + "/clients/gone-lab", fixture.OperatorToken)) Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);

        using (var after = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Task(fed, 1), token)) Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
        using (var revoked = await EnrollAsync(fed, "gone-lab", cert))
        {
            Assert.Equal(HttpStatusCode.Forbidden, revoked.StatusCode);
            Assert.Contains("revoked", await revoked.Content.ReadAsStringAsync());
        }
        // A new certificate may enroll again, under a new SecAgg id (the old one is retired).
        using var renewed = TestAgent.IssueCertificate(Host.DataDirectory, "gone-lab");
        using (var back = await EnrollAsync(fed, "gone-lab", renewed))
        {
            Assert.Equal(HttpStatusCode.OK, back.StatusCode);
            Assert.Equal(3, (await back.ReadAsync<EnrollmentResponse>()).SecAggId);
        }
        var audited = false;
        await foreach (var e in Host.Audit.ReadAsync())
            if (e.Action == "federation.client.remove" && e.Resource == $"federation/{fed}/client/gone-lab") audited = true;
        Assert.True(audited);
    }
}
