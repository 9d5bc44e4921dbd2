using System.Net.Http.Headers;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.RateLimiting;

namespace Serverless.Security.Tests.Support;

/// <summary>
/// An in-process ASP.NET Core app wired exactly as a host would be (authentication, rate limiter,
/// authorization), with one test function per permission in the catalogue plus tenant-scoped ones.
/// </summary>
public sealed class SecuredTestApp : IAsyncDisposable
{
    public const string Issuer = "serverless-test";
    public const string Audience = "serverless-api-test";

    private readonly TempDirectory _dir = new();
    private WebApplication _app = null!;

    public LocalKeyring Keyring { get; private set; } = null!;
    public TokenOptions TokenOptions { get; private set; } = null!;
    public DevTokenIssuer TokenIssuer { get; private set; } = null!;
    public VaultSigningKeys SigningKeys { get; private set; } = null!;
    public InMemoryResourceOwnership Ownership { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public IAuditLog? Audit { get; private set; }

    public static async Task<SecuredTestApp> StartAsync(RateLimitOptions? limits = null, IAuditLog? audit = null)
    {
        var test = new SecuredTestApp { Audit = audit };
        test.Keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = test._dir.Path, MasterKeyEnvironmentVariable = "SERVERLESS_TEST_UNSET_" + Guid.NewGuid().ToString("N") });
        test.TokenOptions = new TokenOptions { Issuer = Issuer, Audience = Audience };
        test.TokenIssuer = new DevTokenIssuer(test.Keyring, test.TokenOptions);
        await test.TokenIssuer.EnsureSigningKeyAsync();
        test.SigningKeys = new VaultSigningKeys(test.Keyring, test.TokenOptions.SigningKeyName);
        await test.SigningKeys.RefreshAsync();

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseTestServer();
        builder.Services.AddServerlessAuthentication(test.TokenOptions, test.SigningKeys);
        builder.Services.AddServerlessAuthorization();
        builder.Services.AddServerlessRateLimiting(limits ?? new RateLimitOptions { PermitsPerPrincipal = 100_000, PermitsPerEndpoint = 100_000 });
        if (audit is not null) builder.Services.AddSingleton(audit);
        var app = builder.Build();
        app.UseAuthentication();
        app.UseRateLimiter();
        app.UseAuthorization();

        foreach (var permission in Serverless.Security.Authorization.RolePermissionTable.Default.Permissions.Keys)
            app.MapGet($"/perm/{permission}", () => Results.Ok(permission)).WithMetadata(new RequirePermissionAttribute(permission));

        app.MapPost("/federations/{federationId}/updates", (string federationId) => Results.Ok(federationId))
            .WithMetadata(new RequirePermissionAttribute(Permissions.RoundParticipate) { ResourceKind = ResourceRef.Federation, ResourceParameter = "federationId" });
        app.MapPost("/federations/{federationId}/rounds", (string federationId) => Results.Accepted($"/federations/{federationId}/rounds/1"))
            .WithMetadata(new RequirePermissionAttribute(Permissions.RoundStart) { ResourceKind = ResourceRef.Federation, ResourceParameter = "federationId" });
        app.MapGet("/batches/{batchId}/result", (string batchId) => Results.Ok(batchId))
            .WithMetadata(new RequirePermissionAttribute(Permissions.InferenceRead) { ResourceKind = ResourceRef.Batch, ResourceParameter = "batchId" });
        app.MapPost("/risk", (HttpContext c) => Results.Ok())
            .WithMetadata(new RequirePermissionAttribute(Permissions.RiskScore) { ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant" })
            .WithMetadata(new EndpointRateLimitAttribute(3));
        app.MapGet("/undeclared", () => Results.Ok("should never be reached"));
        app.MapGet("/health", () => Results.Ok("ok")).AllowAnonymous();

        await app.StartAsync();
        test._app = app;
        test.Ownership = app.Services.GetRequiredService<InMemoryResourceOwnership>();
        test.Client = app.GetTestClient();
        return test;
    }

    public Task<string> TokenAsync(string subject, string[] roles, string? tenant = null) =>
        TokenIssuer.IssueAsync(new TokenRequest(subject, roles, tenant));

    public async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, string? token)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Client.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Keyring.Dispose();
        _dir.Dispose();
    }
}
