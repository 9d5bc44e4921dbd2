using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Storage;
using Serverless.Runtime.Timers;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;
using Serverless.Security.Envelope;
using Serverless.Security.Hosting;
using Serverless.Security.Identity;
using Serverless.Security.RateLimiting;
using Serverless.Security.Tests.Authorization;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Hosting;

/// <summary>Functions shaped like the product's, each declaring its permission (some tenant-scoped).</summary>
public sealed class GuardedFunctions
{
    [Function("StartRound")]
    [RequirePermission(Permissions.RoundStart, ResourceKind = ResourceRef.Federation, ResourceParameter = "federationId")]
    public IResult StartRound([HttpTrigger("post", Route = "federations/{federationId}/rounds")] HttpRequest request, string federationId) =>
        Results.Accepted($"/api/federations/{federationId}/rounds/1");

    [Function("UploadUpdate")]
    [RequirePermission(Permissions.RoundParticipate, ResourceKind = ResourceRef.Federation, ResourceParameter = "federationId")]
    public IResult UploadUpdate([HttpTrigger("post", Route = "federations/{federationId}/updates")] HttpRequest request, string federationId) => Results.Ok(federationId);

    [Function("GetBatchResult")]
    [RequirePermission(Permissions.InferenceRead, ResourceKind = ResourceRef.Batch, ResourceParameter = "batchId")]
    public IResult GetBatchResult([HttpTrigger("get", Route = "batches/{batchId}/result")] HttpRequest request, string batchId) => Results.Ok(batchId);

    [Function("ExportOnnx")]
    [RequirePermission(Permissions.ModelExport)]
    public IResult ExportOnnx([HttpTrigger("get", Route = "models/{version}/onnx")] HttpRequest request, string version) => Results.Ok(version);

    [Function("PromoteModel")]
    [RequirePermission(Permissions.ModelPromote)]
    public IResult Promote([HttpTrigger("post", Route = "models/{version}/promote")] HttpRequest request, string version) => Results.Ok(version);

    [Function("ScoreRisk")]
    [RequirePermission(Permissions.RiskScore)]
    [EndpointRateLimit(2)]
    public IResult ScoreRisk([HttpTrigger("post", Route = "risk")] HttpRequest request) => Results.Ok(0.42);

    [Function("SubmitBatch")]
    [RequirePermission(Permissions.InferenceSubmit)]
    [RequestBodyLimit(100)]
    public IResult SubmitBatch([HttpTrigger("post", Route = "batches")] HttpRequest request) => Results.Accepted();

    [Function("Ping")]
    [AllowAnonymous]
    public string Ping([HttpTrigger("get", Route = "ping")] HttpRequest request) => "pong";

    [Function("NightlyRetrain")]
    public void Nightly([TimerTrigger("0 0 2 * * *")] TimerInfo timer) { }
}

public sealed class UndeclaredFunctions
{
    [Function("Leaky")]
    public string Leaky([HttpTrigger("get", Route = "leaky")] HttpRequest request) => "secret";
}

/// <summary>One function host with the security module and <see cref="GuardedFunctions"/>; tests never depend on each other's writes.</summary>
public sealed class SecuredHostFixture : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();
    public WebApplication App { get; private set; } = null!;
    public HttpClient Client { get; private set; } = null!;
    public string DataDirectory => _dir.Path;

    public async Task InitializeAsync()
    {
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions { HostJson = """{ "version": "2.0" }""", DataDirectory = _dir.Path });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddServerlessSecurity(o => o.RateLimits = new RateLimitOptions { PermitsPerPrincipal = 100_000, PermitsPerEndpoint = 100_000 });
        builder.AddFunctions(typeof(GuardedFunctions));
        App = builder.Build();
        // A plain ASP.NET Core endpoint beside the functions (as a module might map one), guarded at that level.
        App.MapGet("/extra/audit-summary", () => Results.Ok("summary")).WithMetadata(new RequirePermissionAttribute(Permissions.AuditRead));
        await App.StartAsync();
        Client = App.GetTestClient();
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        SqliteConnection.ClearAllPools();
        _dir.Dispose();
    }

    public Task<string> TokenAsync(string subject, string[] roles, string? tenant = null) =>
        App.Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest(subject, roles, tenant));

    public async Task<HttpResponseMessage> SendAsync(string method, string path, string? token)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Client.SendAsync(request);
    }
}

public sealed class HostSecurityTests(SecuredHostFixture host) : IClassFixture<SecuredHostFixture>
{
    private const string Tenant = "hospital-a";
    private const string ResourceId = "res-1";

    /// <summary>Every HTTP function in the host's index (the module's own functions included) × every role.</summary>
    public static TheoryData<string, string> EveryFunctionAndRole()
    {
        // The index is only known once a host is built: build a throwaway one to enumerate it.
        using var dir = new TempDirectory();
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions { HostJson = """{ "version": "2.0" }""", DataDirectory = dir.Path });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddServerlessSecurity();
        builder.AddFunctions(typeof(GuardedFunctions));
        using var app = builder.Build();
        var data = new TheoryData<string, string>();
        foreach (var function in app.Services.GetRequiredService<IFunctionCatalog>().Functions.Where(f => f.TriggerKind == "http"))
            foreach (var role in RolePermissionTests.Expected.Keys)
                data.Add(function.Name, role);
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryFunctionAndRole))]
    public async Task Each_role_reaches_exactly_the_functions_its_permissions_allow(string functionName, string role)
    {
        var function = host.App.Services.GetRequiredService<IFunctionCatalog>().Find(functionName)!;
        var declared = function.GetAttribute<RequirePermissionAttribute>();
        var anonymous = function.Attributes.OfType<IAllowAnonymous>().Any();
        Assert.True(declared is not null || anonymous, $"{functionName} declares no permission");
        if (declared?.ResourceKind is { } kind)
            host.App.Services.GetRequiredService<InMemoryResourceOwnership>().Grant(new ResourceRef(kind, ResourceId), Tenant);

        var path = "/" + Regex.Replace(function.Route!, @"\{[^}]+\}", ResourceId);
        var method = function.HttpMethods.Count > 0 ? function.HttpMethods[0] : "GET";
        var response = await host.SendAsync(method, path, await host.TokenAsync($"user-{role}", [role], Tenant));

        var allowed = anonymous || RolePermissionTests.Expected[role].Contains(declared!.Permission);
        if (allowed)
            Assert.True(response.StatusCode is not (HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden), $"{role} -> {functionName}: {response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        else
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Fact]
    public async Task Declared_functions_refuse_anonymous_callers_with_401_and_anonymous_ones_answer()
    {
        var response = await host.SendAsync("POST", "/api/federations/f/rounds", null);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var ping = await host.SendAsync("GET", "/api/ping", null);
        Assert.Equal("OK pong", ping.StatusCode + " " + await ping.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Cross_tenant_calls_are_refused_and_audited_and_the_auditor_sees_an_intact_chain()
    {
        var ownership = host.App.Services.GetRequiredService<InMemoryResourceOwnership>();
        ownership.Grant(new ResourceRef(ResourceRef.Federation, "fed-a"), "hospital-a");
        ownership.Grant(new ResourceRef(ResourceRef.Federation, "fed-b"), "hospital-b");
        var clientA = await host.TokenAsync("agent-a", [Roles.FederationClient], "hospital-a");
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("POST", "/api/federations/fed-a/updates", clientA)).StatusCode);
        var denied = await host.SendAsync("POST", "/api/federations/fed-b/updates", clientA);
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("tenant 'hospital-a' has no access to federation/fed-b", await denied.Content.ReadAsStringAsync());

        var audit = host.App.Services.GetRequiredService<IAuditLog>();
        var entries = new List<AuditEntry>();
        await foreach (var e in audit.ReadAsync()) entries.Add(e);
        Assert.Contains(entries, e => e.Actor == "agent-a" && e.Action == AuditActions.AccessDenied && e.Resource == "federation/fed-b" && e.Outcome == AuditOutcome.Denied);

        var auditor = await host.TokenAsync("auditor-1", [Roles.Auditor]);
        var verify = await host.SendAsync("GET", "/api/audit/verify", auditor);
        Assert.Equal(HttpStatusCode.OK, verify.StatusCode);
        using var json = JsonDocument.Parse(await verify.Content.ReadAsStringAsync());
        Assert.True(json.RootElement.GetProperty("intact").GetBoolean());
        Assert.True(json.RootElement.GetProperty("entriesChecked").GetInt64() >= 1);
    }

    [Fact]
    public async Task A_body_over_the_function_limit_is_413_before_binding()
    {
        var partner = await host.TokenAsync("p-" + Guid.NewGuid().ToString("N")[..6], [Roles.Partner], "insurer-x");
        using var small = new HttpRequestMessage(HttpMethod.Post, "/api/batches") { Content = new ByteArrayContent(new byte[50]) };
        small.Headers.Authorization = new AuthenticationHeaderValue("Bearer", partner);
        Assert.Equal(HttpStatusCode.Accepted, (await host.Client.SendAsync(small)).StatusCode);
        using var big = new HttpRequestMessage(HttpMethod.Post, "/api/batches") { Content = new ByteArrayContent(new byte[500]) };
        big.Headers.Authorization = new AuthenticationHeaderValue("Bearer", partner);
        var response = await host.Client.SendAsync(big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("at most 100", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Plain_endpoints_beside_the_functions_are_guarded_by_their_permission_metadata()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.SendAsync("GET", "/extra/audit-summary", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await host.SendAsync("GET", "/extra/audit-summary", await host.TokenAsync("p", [Roles.Partner], "x"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("GET", "/extra/audit-summary", await host.TokenAsync("a", [Roles.Auditor]))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("GET", "/api/health", null)).StatusCode); // host endpoints stay open
    }

    [Fact]
    public async Task Rotating_the_token_signing_key_keeps_old_and_new_tokens_valid()
    {
        var admin = await host.TokenAsync("root-" + Guid.NewGuid().ToString("N")[..6], [Roles.Admin]);
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("POST", "/api/keys/token-signing/rotate", admin)).StatusCode);
        var fresh = await host.TokenAsync("aud-" + Guid.NewGuid().ToString("N")[..6], [Roles.Auditor]);
        Assert.NotEqual(admin.Split('.')[0], fresh.Split('.')[0]); // a new kid in the header
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("GET", "/api/roles", admin)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("GET", "/api/audit/entries?limit=1", fresh)).StatusCode);
    }

    [Fact]
    public async Task Disabling_an_old_token_signing_version_refuses_its_tokens_at_once_and_is_audited()
    {
        var vault = host.App.Services.GetRequiredService<Serverless.Security.Keys.IKeyVault>();
        var admin = await host.TokenAsync("root-" + Guid.NewGuid().ToString("N")[..6], [Roles.Admin]);
        var current = (await vault.GetCurrentVersionAsync("token-signing"))!.Id;
        Assert.Equal(HttpStatusCode.Conflict, (await host.SendAsync("POST", $"/api/keys/token-signing/versions/{current.Version}/disable", admin)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await host.SendAsync("POST", "/api/keys/token-signing/versions/no-such-version/disable", admin)).StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("POST", "/api/keys/token-signing/rotate", admin)).StatusCode);
        var admin2 = await host.TokenAsync("root-" + Guid.NewGuid().ToString("N")[..6], [Roles.Admin]);
        using (var disable = await host.SendAsync("POST", $"/api/keys/token-signing/versions/{current.Version}/disable", admin2))
            Assert.True(disable.StatusCode == HttpStatusCode.OK, await disable.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.SendAsync("GET", "/api/roles", admin)).StatusCode);   // signed by the disabled version
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("GET", "/api/roles", admin2)).StatusCode);
        var audit = host.App.Services.GetRequiredService<IAuditLog>();
        var found = false;
        await foreach (var e in audit.ReadAsync())
            if (e.Action == AuditActions.KeyDisable && e.Resource == "key/token-signing" && e.Detail!.Contains(current.Version, StringComparison.Ordinal)) found = true;
        Assert.True(found, "the disable is audited");
    }

    [Fact]
    public async Task A_bad_token_is_audited_once()
    {
        var federation = Guid.NewGuid().ToString("N");
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.SendAsync("POST", $"/api/federations/{federation}/rounds", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.SendAsync("POST", $"/api/federations/{federation}/updates", null)).StatusCode);
        var entries = new List<AuditEntry>();
        await foreach (var e in host.App.Services.GetRequiredService<IAuditLog>().ReadAsync()) entries.Add(e);
        var failures = entries.Where(e => e.Action == AuditActions.AuthenticationFailed && e.Resource.Contains(federation)).ToList();
        Assert.Equal(2, failures.Count); // one for the bad token (by the bearer handler), one for the missing token (by the gate)
        Assert.Equal($"/api/federations/{federation}/rounds", failures[0].Resource);
        Assert.Equal($"federation/{federation}", failures[1].Resource);
    }

    [Fact]
    public async Task Per_function_rate_limit_answers_429_with_Retry_After()
    {
        var clinician = await host.TokenAsync("dr-" + Guid.NewGuid().ToString("N")[..6], [Roles.Clinician], "hospital-a");
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("POST", "/api/risk", clinician)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.SendAsync("POST", "/api/risk", clinician)).StatusCode);
        var limited = await host.SendAsync("POST", "/api/risk", clinician);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single()) >= 1);
    }

    [Fact]
    public async Task Checkpoints_are_stored_encrypted_and_rotation_through_the_admin_function_rewraps_them()
    {
        var store = host.App.Services.GetRequiredService<CheckpointStore>();
        var name = "fed-x/round-" + Guid.NewGuid().ToString("N")[..6];
        await store.Store.PutAsync(name, new MemoryStream("weights"u8.ToArray()));
        var before = (await store.Store.GetEnvelopeInfoAsync(name))!.KeyId;
        await using (var raw = await store.Raw.GetAsync(name))
            Assert.Equal("SLENV"u8.ToArray(), (await ReadAllAsync(raw!.Content))[..5]);

        var admin = await host.TokenAsync("root", [Roles.Admin]);
        var rotate = await host.SendAsync("POST", "/api/keys/checkpoints-kek/rotate", admin);
        Assert.Equal(HttpStatusCode.OK, rotate.StatusCode);
        var after = (await store.Store.GetEnvelopeInfoAsync(name))!.KeyId;
        Assert.NotEqual(before.Version, after.Version);
        await using var read = await store.Store.GetAsync(name);
        Assert.Equal("weights"u8.ToArray(), await ReadAllAsync(read!.Content));

        // Whoever asks the host's provider for the checkpoint container gets the encrypting store.
        var viaProvider = host.App.Services.GetRequiredService<IBlobStoreProvider>().GetContainer("checkpoints");
        Assert.IsType<EncryptedBlobStore>(viaProvider);
        await viaProvider.PutAsync(name + "-2", new MemoryStream("more"u8.ToArray()));
        await using (var raw2 = await store.Raw.GetAsync(name + "-2"))
            Assert.Equal("SLENV"u8.ToArray(), (await ReadAllAsync(raw2!.Content))[..5]);
        Assert.IsNotType<EncryptedBlobStore>(host.App.Services.GetRequiredService<IBlobStoreProvider>().GetContainer("audit"));

        var compliance = await host.SendAsync("GET", "/api/compliance", await host.TokenAsync("aud", [Roles.Auditor]));
        Assert.Equal(HttpStatusCode.OK, compliance.StatusCode);
        Assert.Contains("encryption at rest", await compliance.Content.ReadAsStringAsync());
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    [Fact]
    public async Task A_host_with_an_undeclared_http_function_refuses_to_start()
    {
        using var dir = new TempDirectory();
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions { HostJson = """{ "version": "2.0" }""", DataDirectory = dir.Path });
        builder.WebApplicationBuilder.WebHost.UseTestServer();
        builder.Services.AddServerlessSecurity();
        builder.AddFunctions(typeof(UndeclaredFunctions));
        await using var app = builder.Build();
        var error = await Assert.ThrowsAsync<FunctionIndexException>(() => app.StartAsync());
        Assert.Contains("HTTP function 'Leaky' declares no permission", error.Message);
        SqliteConnection.ClearAllPools();
    }
}
