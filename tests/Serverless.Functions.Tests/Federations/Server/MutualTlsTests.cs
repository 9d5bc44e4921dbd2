using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Functions.Tests.App;
using Serverless.Security.Identity;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// The real app under the local host over HTTPS, the host asking for client certificates and forwarding
/// them as X-ARR-ClientCert (Azure's front end in Optional mode), the app requiring them on round calls:
/// a federation client's call needs its token and the certificate it enrolled with, checked by the
/// certificate handler against the federation's CA, and a removed client's certificate is refused on its
/// next request. Operators keep calling with a bearer token alone.
/// </summary>
public sealed class MutualTlsFixture : IAsyncLifetime
{
    public const string Fed = "mtls";
    public FunctionAppHost App { get; private set; } = null!;
    public string OperatorToken { get; private set; } = "";

    public async Task InitializeAsync()
    {
        App = await FunctionAppHost.StartAsync(new FunctionAppHostOptions
        {
            Https = ClientCertificateMode.AllowCertificate,
            Settings = new Dictionary<string, string> { [FederationOptions.ClientCertificateSetting] = "required" },
        });
        OperatorToken = await App.TokenAsync("op-mtls", "operator");
        // An operator over TLS without a certificate: bearer tokens stay for operators.
        await App.Http.CreateFederationAsync(OperatorToken, CompletedRoundFixture.NewConfig(Fed));
    }

    public async Task DisposeAsync() => await App.DisposeAsync();
}

public sealed class MutualTlsTests(MutualTlsFixture fixture) : IClassFixture<MutualTlsFixture>
{
    private const string Fed = MutualTlsFixture.Fed;

    private X509Certificate2 Issue(string clientId) => TestAgent.IssueCertificate(fixture.App.DataDirectory, clientId);

    /// <summary>Enrolls over a connection without a client certificate (enrollment proves the key by a signature) and returns the token.</summary>
    private async Task<string> EnrollAsync(string clientId, X509Certificate2 certificate)
    {
        // The agent disposes what it is given: a copy, the test keeps presenting the original.
        using var agent = new TestAgent(fixture.App.Http, Fed, clientId, new X509Certificate2(certificate), []);
        await agent.EnrollAsync();
        return agent.Token;
    }

    private Task<(HttpStatusCode Status, string Body)> TaskCallAsync(string token, X509Certificate2? presented, Action<HttpRequestMessage>? edit = null) =>
        GetAsync(RoundRoutes.Task(Fed, 1), token, presented, edit);

    private async Task<(HttpStatusCode Status, string Body)> GetAsync(string path, string token, X509Certificate2? presented, Action<HttpRequestMessage>? edit = null)
    {
        using var http = fixture.App.CreateClient(presented);
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", token);
        edit?.Invoke(request);
        using var response = await http.SendAsync(request);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_round_call_needs_the_enrolled_certificate_of_the_federations_CA_over_TLS()
    {
        using var certificate = Issue("lab-a");
        var token = await EnrollAsync("lab-a", certificate);

        // With its enrolled certificate the client's call passes the gate (no round is running: 404, not 401/403).
        var valid = await TaskCallAsync(token, certificate);
        Assert.True(valid.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{(int)valid.Status} {valid.Body}");

        // The same token without a certificate: refused, the token alone opens nothing.
        var none = await TaskCallAsync(token, presented: null);
        Assert.True(none.Status == HttpStatusCode.Unauthorized, $"{(int)none.Status} {none.Body}");
        Assert.Contains("mutual TLS", none.Body);

        // A certificate of the same name from another CA: the certificate handler refuses its chain.
        using (var stranger = DevCertificateAuthority.Create("Another CA"))
        using (var foreign = stranger.IssueClientCertificate("lab-a"))
        {
            var refused = await TaskCallAsync(token, foreign);
            Assert.True(refused.Status == HttpStatusCode.Forbidden, $"{(int)refused.Status} {refused.Body}");
            Assert.Contains("not one of the federation's CA", refused.Body);
        }

        // A valid certificate of the CA, but another client's: not the one this token is bound to.
        using (var other = Issue("lab-b"))
        {
            await EnrollAsync("lab-b", other);
            var swapped = await TaskCallAsync(token, other);
            Assert.True(swapped.Status == HttpStatusCode.Forbidden, $"{(int)swapped.Status} {swapped.Body}");
            Assert.Contains("not the one client 'lab-a' is enrolled with", swapped.Body);
        }
    }

    [Fact]
    public async Task The_read_only_routes_need_the_certificate_too()
    {
        using var certificate = Issue("lab-read");
        var token = await EnrollAsync("lab-read", certificate);
        string[] reads = [RoundRoutes.Federations(), RoundRoutes.Federation(Fed), RoundRoutes.Rounds(Fed), RoundRoutes.ActiveRound(Fed), RoundRoutes.Round(Fed, 1)];
        foreach (var path in reads)
        {
            var none = await GetAsync(path, token, presented: null);
            Assert.True(none.Status == HttpStatusCode.Unauthorized, $"{path}: {(int)none.Status} {none.Body}");
            var valid = await GetAsync(path, token, certificate);
            Assert.True(valid.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{path}: {(int)valid.Status} {valid.Body}");
        }
        // The federation itself is read with the certificate, and the list holds just the client's own federation.
        var listed = await GetAsync(RoundRoutes.Federations(), token, certificate);
        Assert.Equal(HttpStatusCode.OK, listed.Status);
        Assert.Contains($"\"{Fed}\"", listed.Body);
        // Operators read without one.
        var byOperator = await GetAsync(RoundRoutes.Rounds(Fed), fixture.OperatorToken, presented: null);
        Assert.Equal(HttpStatusCode.OK, byOperator.Status);
    }

    [Fact]
    public async Task A_forwarded_certificate_header_from_the_caller_is_dropped_by_the_host()
    {
        using var certificate = Issue("lab-spoof");
        var token = await EnrollAsync("lab-spoof", certificate);
        // The caller claims the front end's header itself, without presenting the certificate in the handshake.
        var spoofed = await TaskCallAsync(token, presented: null,
            r => r.Headers.TryAddWithoutValidation("X-ARR-ClientCert", Convert.ToBase64String(certificate.RawData)));
        Assert.True(spoofed.Status == HttpStatusCode.Unauthorized, $"{(int)spoofed.Status} {spoofed.Body}");
        // Presenting another certificate while claiming this one in the header: the handshake's certificate is what counts.
        using var other = Issue("lab-spoof-2");
        var mixed = await TaskCallAsync(token, other,
            r => r.Headers.TryAddWithoutValidation("X-ARR-ClientCert", Convert.ToBase64String(certificate.RawData)));
        Assert.True(mixed.Status == HttpStatusCode.Forbidden, $"{(int)mixed.Status} {mixed.Body}");
    }

    [Fact]
    public async Task A_removed_clients_certificate_is_refused_on_its_next_request()
    {
        using var certificate = Issue("lab-gone");
        var token = await EnrollAsync("lab-gone", certificate);
        var before = await TaskCallAsync(token, certificate);
        Assert.True(before.Status is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{(int)before.Status} {before.Body}");

        using (var remove = await fixture.App.Http.SendAsync(HttpMethod.Delete, RoundRoutes.Federation(Fed) + "/clients/lab-gone", fixture.OperatorToken))
            Assert.True(remove.StatusCode == HttpStatusCode.NoContent, await remove.Content.ReadAsStringAsync());

        var after = await TaskCallAsync(token, certificate);
        Assert.True(after.Status == HttpStatusCode.Forbidden, $"{(int)after.Status} {after.Body}");
        Assert.Contains("no access to federation/mtls", after.Body);   // off the roster: its certificate and token open nothing
    }
}
