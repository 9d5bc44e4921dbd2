using System.Net;
using Serverless.Security.Authorization;
using Serverless.Security.Tests.Support;

namespace Serverless.Security.Tests.Authorization;

/// <summary>One app shared by the table-driven tests (each request is independent).</summary>
public sealed class SecuredAppFixture : IAsyncLifetime
{
    public SecuredTestApp App { get; private set; } = null!;
    public async Task InitializeAsync() => App = await SecuredTestApp.StartAsync();
    public async Task DisposeAsync() => await App.DisposeAsync();
}

public sealed class RolePermissionTests(SecuredAppFixture fixture) : IClassFixture<SecuredAppFixture>
{
    /// <summary>
    /// The specification, written out independently of roles.json: exactly these (role, permission)
    /// pairs are allowed. Changing roles.json without changing this list fails the build's tests.
    /// </summary>
    public static readonly Dictionary<string, string[]> Expected = new()
    {
        ["operator"] = ["federation.create", "federation.manage", "federation.read", "round.start", "round.read", "model.promote", "model.read", "metrics.read", "compliance.read", "orchestration.read", "orchestration.manage"],
        ["federation-client"] = ["federation.read", "round.read", "round.participate"],
        ["partner"] = ["inference.submit", "inference.read"],
        ["bank"] = ["fraud.submit", "fraud.alerts"],
        ["clinician"] = ["risk.score", "risk.explain"],
        ["data-scientist"] = ["federation.read", "round.read", "model.read", "model.export", "metrics.read", "risk.explain", "data.export"],
        ["auditor"] = ["federation.read", "round.read", "model.read", "audit.read", "audit.verify", "compliance.read", "orchestration.read"],
        ["admin"] = ["federation.create", "federation.manage", "federation.read", "round.start", "round.read", "model.promote", "model.read", "metrics.read", "audit.read", "audit.verify", "compliance.read", "orchestration.read", "orchestration.manage", "keys.manage", "roles.manage"],
    };

    public static TheoryData<string, string> EveryRoleAndPermission()
    {
        var data = new TheoryData<string, string>();
        foreach (var role in Expected.Keys)
            foreach (var permission in RolePermissionTable.Default.Permissions.Keys)
                data.Add(role, permission);
        return data;
    }

    [Fact]
    public void The_shipped_table_is_exactly_the_specification()
    {
        var table = RolePermissionTable.Default;
        Assert.Equal(Expected.Keys.Order(), table.Roles.Keys.Order());
        foreach (var (role, permissions) in Expected)
            Assert.Equal(permissions.Order(), table.Roles[role].Permissions.Order());
        Assert.True(table.Roles["federation-client"].TenantScoped);
        Assert.True(table.Roles["partner"].TenantScoped);
        Assert.True(table.Roles["clinician"].TenantScoped);
        Assert.False(table.Roles["operator"].TenantScoped);
        // Least privilege: no role holds everything; nobody but admin manages keys or roles.
        Assert.DoesNotContain(table.Roles.Values, r => r.Permissions.Count == table.Permissions.Count);
        Assert.All(table.Roles.Values.Where(r => r.Name != "admin"), r => Assert.False(r.Permissions.Contains("keys.manage"), r.Name));
    }

    [Theory]
    [MemberData(nameof(EveryRoleAndPermission))]
    public async Task Each_role_is_allowed_exactly_its_permissions_over_http(string role, string permission)
    {
        var token = await fixture.App.TokenAsync("user-" + role, [role], tenant: "tenant-of-" + role);
        var response = await fixture.App.SendAsync(HttpMethod.Get, $"/perm/{permission}", token);
        var expected = Expected[role].Contains(permission) ? HttpStatusCode.OK : HttpStatusCode.Forbidden;
        Assert.Equal(expected, response.StatusCode);
        if (expected == HttpStatusCode.Forbidden)
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Unknown_roles_are_refused_even_next_to_a_known_one_and_no_role_means_no_access()
    {
        var unknown = await fixture.App.SendAsync(HttpMethod.Get, "/perm/federation.read", await fixture.App.TokenAsync("x", ["superuser"]));
        Assert.Equal(HttpStatusCode.Forbidden, unknown.StatusCode);
        Assert.Contains("unknown role 'superuser'", await unknown.Content.ReadAsStringAsync());
        var mixed = await fixture.App.SendAsync(HttpMethod.Get, "/perm/federation.read", await fixture.App.TokenAsync("x", ["admin", "Admin"]));
        Assert.Equal(HttpStatusCode.Forbidden, mixed.StatusCode); // role names are case-sensitive data, not guesses
    }

    [Fact]
    public async Task A_hospital_reaches_only_its_own_federations()
    {
        var app = fixture.App;
        app.Ownership.Grant(new ResourceRef(ResourceRef.Federation, "fed-a"), "hospital-a");
        app.Ownership.Grant(new ResourceRef(ResourceRef.Federation, "fed-b"), "hospital-b");
        var hospitalA = await app.TokenAsync("client-a", ["federation-client"], "hospital-a");
        Assert.Equal(HttpStatusCode.OK, (await app.SendAsync(HttpMethod.Post, "/federations/fed-a/updates", hospitalA)).StatusCode);
        var cross = await app.SendAsync(HttpMethod.Post, "/federations/fed-b/updates", hospitalA);
        Assert.Equal(HttpStatusCode.Forbidden, cross.StatusCode);
        Assert.Contains("tenant 'hospital-a' has no access to federation/fed-b", await cross.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Post, "/federations/unknown/updates", hospitalA)).StatusCode);

        var noTenant = await app.TokenAsync("client-x", ["federation-client"]);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Post, "/federations/fed-a/updates", noTenant)).StatusCode);

        // The operator is a global role: it starts rounds in any federation.
        var op = await app.TokenAsync("op", ["operator"]);
        Assert.Equal(HttpStatusCode.Accepted, (await app.SendAsync(HttpMethod.Post, "/federations/fed-b/rounds", op)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Post, "/federations/fed-b/rounds", hospitalA)).StatusCode);
    }

    [Fact]
    public async Task A_partner_reaches_only_its_own_batches_and_a_clinician_only_its_own_tenant()
    {
        var app = fixture.App;
        app.Ownership.Grant(new ResourceRef(ResourceRef.Batch, "batch-1"), "insurer-x");
        var x = await app.TokenAsync("px", ["partner"], "insurer-x");
        var y = await app.TokenAsync("py", ["partner"], "insurer-y");
        Assert.Equal(HttpStatusCode.OK, (await app.SendAsync(HttpMethod.Get, "/batches/batch-1/result", x)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Get, "/batches/batch-1/result", y)).StatusCode);

        var clinician = await app.TokenAsync("dr", ["clinician"], "hospital-a");
        Assert.Equal(HttpStatusCode.OK, (await app.SendAsync(HttpMethod.Post, "/risk?tenant=hospital-a", clinician)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Post, "/risk?tenant=hospital-b", clinician)).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await app.SendAsync(HttpMethod.Post, "/risk", clinician)).StatusCode);
    }
}

public sealed class AccessPolicyTests
{
    private static System.Security.Claims.ClaimsPrincipal User(string[] roles, string? tenant = null, bool authenticated = true)
    {
        var claims = roles.Select(r => new System.Security.Claims.Claim("role", r)).ToList();
        claims.Add(new("sub", "u"));
        if (tenant is not null) claims.Add(new("tenant", tenant));
        return new(new System.Security.Claims.ClaimsIdentity(claims, authenticated ? "test" : null, "sub", "role"));
    }

    [Fact]
    public async Task Decisions_follow_the_rules_in_order()
    {
        var policy = new AccessPolicy(RolePermissionTable.Default, new InMemoryResourceOwnership());
        Assert.Equal(401, (await policy.DecideAsync(User(["admin"], authenticated: false), "audit.read")).StatusCode);
        Assert.Contains("not declared", (await policy.DecideAsync(User(["admin"]), "everything.do")).Reason);
        Assert.Contains("no role", (await policy.DecideAsync(User([]), "audit.read")).Reason);
        Assert.True((await policy.DecideAsync(User(["auditor"]), "audit.read")).Allowed);
        // A global grant wins over a scoped one for the same permission.
        var both = await policy.DecideAsync(User(["federation-client", "auditor"], "h"), "federation.read", new ResourceRef("federation", "other"));
        Assert.True(both.Allowed);
        Assert.Equal("auditor", both.GrantedBy);
    }

    [Fact]
    public void Malformed_tables_are_rejected()
    {
        static RolePermissionTable Parse(string json) => RolePermissionTable.Parse(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(json)));
        Assert.Throws<FormatException>(() => Parse("""{"permissions":{"a.b":""},"roles":{"r":{"permissions":["c.d"]}}}"""));
        Assert.Throws<FormatException>(() => Parse("""{"roles":{}}"""));
        Assert.Throws<FormatException>(() => Parse("not json"));
        var ok = Parse("""{"permissions":{"a.b":"x"},"roles":{"r":{"scoped":true,"permissions":["a.b"]}}}""");
        Assert.True(ok.Grants("r", "a.b"));
        Assert.False(ok.Grants("r", "c.d"));
    }
}
