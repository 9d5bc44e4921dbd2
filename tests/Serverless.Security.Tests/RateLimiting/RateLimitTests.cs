using System.Net;
using Serverless.Security.RateLimiting;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.RateLimiting;

public sealed class RateLimitTests : IAsyncLifetime
{
    private SecuredTestApp _app = null!;

    public async Task InitializeAsync() =>
        _app = await SecuredTestApp.StartAsync(new RateLimitOptions { PermitsPerPrincipal = 5, PermitsPerEndpoint = 2, Window = TimeSpan.FromMinutes(10) });

    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task Over_budget_requests_get_429_with_Retry_After_per_endpoint_and_per_principal()
    {
        var alice = await _app.TokenAsync("alice", ["auditor"]);
        var bob = await _app.TokenAsync("bob", ["auditor"]);
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", alice)).StatusCode);

        var limited = await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", alice);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single());
        Assert.InRange(retryAfter, 1, 600);
        Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);

        // Another endpoint for the same principal, and the same endpoint for another principal, still pass.
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/perm/audit.verify", alice)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/perm/audit.read", bob)).StatusCode);

        // The per-principal budget (5) spans endpoints: fresh endpoints (each with its own endpoint budget) soon hit it.
        var fresh = new[] { "compliance.read", "round.read", "federation.read", "model.read", "orchestration.read" };
        HttpResponseMessage? overall = null;
        foreach (var permission in fresh)
        {
            var response = await _app.SendAsync(HttpMethod.Get, $"/perm/{permission}", alice);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) { overall = response; break; }
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        Assert.NotNull(overall);
        Assert.True(overall!.Headers.Contains("Retry-After"));
        // Bob's own budget is untouched by Alice's.
        Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/perm/compliance.read", bob)).StatusCode);
    }

    [Fact]
    public async Task Anonymous_callers_are_limited_by_address()
    {
        for (var i = 0; i < 2; i++) Assert.Equal(HttpStatusCode.OK, (await _app.SendAsync(HttpMethod.Get, "/health", null)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await _app.SendAsync(HttpMethod.Get, "/health", null)).StatusCode);
    }
}
