using System.Net;
using System.Net.Http.Headers;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Federation.Rounds;
using Serverless.Functions.Hosting;
using Serverless.Functions.Inference;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;
using Serverless.Security.Envelope;
using Serverless.Security.Hosting;
using Serverless.Security.Identity;
using Serverless.Security.Keys;
using Serverless.Security.RateLimiting;
using Serverless.Storage;

namespace Serverless.Functions.Tests.App;

/// <summary>
/// One running app for <see cref="AppSecurityTests"/>, with two federations in its store: fed-a enrolls the
/// client hospital-a, fed-b enrolls hospital-b. The host takes bodies up to <see cref="HostBodyLimit"/>.
/// </summary>
public sealed class AppSecurityFixture : IAsyncLifetime
{
    public const string FedA = "fed-a";
    public const string FedB = "fed-b";
    public const string TenantA = "hospital-a";
    public const string TenantB = "hospital-b";
    public const string ThumbprintA = "thumbprint-of-hospital-a";

    /// <summary>
    /// The host's limit on a body: raised from its default (100 MiB, as on Azure) above the app's largest
    /// [RequestBodyLimit] (512 MiB), which the host would otherwise refuse before the app's gate sees it.
    /// </summary>
    public const long HostBodyLimit = 1L << 30;

    public FunctionAppHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Host = await FunctionAppHost.StartAsync(new FunctionAppHostOptions { MaxRequestBodySize = HostBodyLimit });
        var now = DateTimeOffset.UtcNow;
        Assert.True(await Host.Store.TryCreateAsync(new FederationState
        {
            Config = new FederationConfig { Id = FedA }, CreatedAt = now, Clients = [new EnrolledClient(TenantA, 1, ThumbprintA, now)],
        }));
        Assert.True(await Host.Store.TryCreateAsync(new FederationState
        {
            Config = new FederationConfig { Id = FedB }, CreatedAt = now, Clients = [new EnrolledClient(TenantB, 1, "thumbprint-of-hospital-b", now)],
        }));
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();

    /// <summary>A federation client's token as enrollment issues it: bound to one federation and one certificate.</summary>
    public Task<string> ClientTokenAsync(string tenant, string federation, string thumbprint) =>
        Host.Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest(tenant, [Roles.FederationClient], tenant,
            Claims: new Dictionary<string, string> { [SecurityClaims.Federation] = federation, [SecurityClaims.CertificateThumbprint] = thumbprint }));

    public async Task<HttpResponseMessage> SendAsync(string method, string path, string? token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = content };
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await Host.Http.SendAsync(request);
    }

    public async Task<List<AuditEntry>> AuditAsync()
    {
        var entries = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync()) entries.Add(e);
        return entries;
    }
}

/// <summary>
/// The security gate of the real app (functions/Serverless.Functions/Hosting/AuthorizationMiddleware.cs) under
/// the local host: the role × function matrix from the app's own declarations, tenant scoping, body limits,
/// signing-key rotation and disabling, audit of bad tokens, rate limits, and encrypted checkpoints.
/// </summary>
public sealed class AppSecurityTests(AppSecurityFixture app) : IClassFixture<AppSecurityFixture>
{
    private static readonly RolePermissionTable Table = RolePermissionTable.Default;

    /// <summary>An HTTP function of the app as it declares itself.</summary>
    private sealed record HttpFunction(string Name, string Method, string Route, RequirePermissionAttribute? Permission, bool Anonymous, MethodInfo Info);

    private static List<HttpFunction> HttpFunctions() =>
        FunctionMethods.All()
            .Where(f => FunctionMethods.IsHttp(f.Method))
            .Select(f =>
            {
                var trigger = f.Method.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).Single(t => t is not null)!;
                return new HttpFunction(f.Name, trigger.Methods![0].ToUpperInvariant(), trigger.Route!,
                    f.Method.GetCustomAttribute<RequirePermissionAttribute>(), f.Method.IsDefined(typeof(AllowAnonymousAttribute), inherit: true), f.Method);
            })
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();

    /// <summary>Who calls as each role: scoped roles carry a tenant; the federation client is enrolled in fed-a.</summary>
    private static string? TenantOf(string role) => Table.Roles[role].TenantScoped
        ? role == Roles.FederationClient ? AppSecurityFixture.TenantA : "tenant-of-" + role
        : null;

    /// <summary>
    /// The path a caller uses: route values name resources the caller's tenant reaches (its own tenant, the
    /// federation it is enrolled in) and, for global roles, ones that do not exist (so no call changes anything).
    /// </summary>
    private static string PathFor(HttpFunction function, string? tenant) =>
        "api/" + Regex.Replace(function.Route, @"\{(?<name>[^}:]+)(:(?<constraint>[^}]+))?\}", m =>
        {
            if (m.Groups["constraint"].Value == "int") return "1";
            return m.Groups["name"].Value switch
            {
                "federation" => tenant == AppSecurityFixture.TenantA ? AppSecurityFixture.FedA : "fed-none",
                "tenant" => tenant ?? "tenant-none",
                "name" => "no-such-key", // keys/{name}/...: never rotate or disable a real key here
                var other => other + "-none",
            };
        });

    /// <summary>Does the caller's tenant reach the resource <see cref="PathFor"/> names?</summary>
    private static bool Reaches(RequirePermissionAttribute declared, string? tenant) => declared.ResourceKind switch
    {
        null => true,
        ResourceRef.Federation => tenant == AppSecurityFixture.TenantA, // enrolled in fed-a
        ResourceRef.Tenant => tenant is not null, // its own tenant
        var kind => throw new InvalidOperationException($"the matrix does not know resource kind '{kind}': teach PathFor and Reaches about it"),
    };

    /// <summary>What the app's declarations and the role table say a role's call answers: true = reaches the function.</summary>
    private static bool Expected(HttpFunction function, string role)
    {
        if (function.Anonymous) return true;
        var declared = function.Permission!;
        if (!Table.Grants(role, declared.Permission)) return false;
        return !Table.Roles[role].TenantScoped || Reaches(declared, TenantOf(role));
    }

    private static HttpContent? BodyFor(string method) =>
        method is "POST" or "PUT" ? new StringContent("{}", Encoding.UTF8, "application/json") : null;

    private async Task<string> TokenForAsync(string role) => role == Roles.FederationClient
        ? await app.ClientTokenAsync(AppSecurityFixture.TenantA, AppSecurityFixture.FedA, AppSecurityFixture.ThumbprintA)
        : await app.Host.TokenAsync("matrix-" + role, role, TenantOf(role));

    [Fact]
    public void TheMatrixCoversEveryHttpFunctionAndRole()
    {
        var functions = HttpFunctions();
        Assert.True(functions.Count >= 40, $"only {functions.Count} HTTP functions found");
        Assert.All(functions, f => Assert.True(f.Permission is not null || f.Anonymous, $"{f.Name} declares no permission"));
        Assert.Equal(8, Table.Roles.Count);
        // Spot checks of the derived matrix, written out by hand, so a wrong derivation cannot pass unnoticed.
        var byName = functions.ToDictionary(f => f.Name);
        Assert.True(Expected(byName["SubmitFraudTransactions"], Roles.Bank));
        Assert.False(Expected(byName["PromoteFraudModel"], Roles.Bank));
        Assert.False(Expected(byName["KeyRotate"], Roles.Operator));
        Assert.False(Expected(byName["AuditEntries"], Roles.DataScientist));
        Assert.True(Expected(byName["AuditVerify"], Roles.Auditor));
        Assert.True(Expected(byName["GetFederation"], Roles.FederationClient));
        Assert.False(Expected(byName["DeleteFederation"], Roles.FederationClient));
        Assert.True(Expected(byName["SubmitPartnerBatch"], Roles.Partner));
        Assert.True(Expected(byName["Health"], Roles.Clinician));
    }

    /// <summary>
    /// With the ASP.NET Core integration only an IResult (or IActionResult) is written to the response: any other
    /// return value is dropped and the caller gets an empty 200 (the compliance report did).
    /// </summary>
    [Fact]
    public void EveryHttpFunctionReturnsAResultTheResponseIsWrittenFrom()
    {
        static Type Unwrap(Type t) => t.IsGenericType && (t.GetGenericTypeDefinition() == typeof(Task<>) || t.GetGenericTypeDefinition() == typeof(ValueTask<>))
            ? t.GetGenericArguments()[0] : t;
        var wrong = HttpFunctions()
            .Where(f => !typeof(Microsoft.AspNetCore.Http.IResult).IsAssignableFrom(Unwrap(f.Info.ReturnType)))
            .Select(f => $"{f.Name} returns {f.Info.ReturnType}")
            .ToList();
        Assert.Empty(wrong);
    }

    [Fact]
    public async Task EachRoleReachesExactlyTheFunctionsItsPermissionsAllow()
    {
        var functions = HttpFunctions();
        var mismatches = new List<string>();
        var reached = 0;
        foreach (var role in Table.Roles.Keys.Order(StringComparer.Ordinal))
        {
            var token = await TokenForAsync(role);
            foreach (var function in functions)
            {
                var path = PathFor(function, TenantOf(role));
                using var response = await app.SendAsync(function.Method, path, token, BodyFor(function.Method));
                var expected = Expected(function, role);
                var status = response.StatusCode;
                if (expected) reached++;
                if (expected ? status is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden : status != HttpStatusCode.Forbidden)
                    mismatches.Add($"{role} {function.Method} {path} ({function.Name}): expected {(expected ? "to reach it" : "403")}, got {(int)status} {await response.Content.ReadAsStringAsync()}");
            }
        }
        Assert.Empty(mismatches);
        Assert.True(reached > functions.Count, $"only {reached} allowed calls"); // the matrix is not all refusals

        // Hard-coded spot checks against the running app: an operator cannot rotate keys, an auditor reads the trail.
        using (var refused = await app.SendAsync("POST", "api/keys/token-signing/rotate", await app.Host.TokenAsync("spot-operator", Roles.Operator)))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
            Assert.Contains("keys.manage", await refused.Content.ReadAsStringAsync());
        }
        using (var entries = await app.SendAsync("GET", "api/audit/entries?limit=1", await app.Host.TokenAsync("spot-auditor", Roles.Auditor)))
            Assert.Equal(HttpStatusCode.OK, entries.StatusCode);
        using (var clinician = await app.SendAsync("GET", "api/roles", await app.Host.TokenAsync("spot-clinician", Roles.Clinician, "hospital-a")))
            Assert.Equal(HttpStatusCode.Forbidden, clinician.StatusCode);
    }

    [Fact]
    public async Task AnonymousCallersGet401OnDeclaredFunctionsAndAnonymousFunctionsAnswer()
    {
        var mismatches = new List<string>();
        foreach (var function in HttpFunctions())
        {
            var path = PathFor(function, tenant: null);
            using var response = await app.SendAsync(function.Method, path, token: null, BodyFor(function.Method));
            if (function.Anonymous ? response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden : response.StatusCode != HttpStatusCode.Unauthorized)
                mismatches.Add($"anonymous {function.Method} {path} ({function.Name}): got {(int)response.StatusCode}");
            else if (!function.Anonymous && response.Headers.WwwAuthenticate.ToString() != "Bearer")
                mismatches.Add($"anonymous {function.Name}: 401 without WWW-Authenticate: Bearer");
        }
        Assert.Empty(mismatches);
        using var health = await app.SendAsync("GET", "api/health", token: null);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task CrossTenantCallsAreRefusedAndAuditedAndTheChainVerifiesIntact()
    {
        var client = await app.ClientTokenAsync(AppSecurityFixture.TenantA, AppSecurityFixture.FedA, AppSecurityFixture.ThumbprintA);
        using (var own = await app.SendAsync("GET", $"api/federations/{AppSecurityFixture.FedA}", client))
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        using (var denied = await app.SendAsync("GET", $"api/federations/{AppSecurityFixture.FedB}", client))
        {
            Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
            Assert.Contains($"tenant '{AppSecurityFixture.TenantA}' has no access to federation/{AppSecurityFixture.FedB}", await denied.Content.ReadAsStringAsync());
        }
        var partner = await app.Host.TokenAsync("partner-x", Roles.Partner, "insurer-x");
        using (var otherTenant = await app.SendAsync("GET", "api/partners/insurer-y/keys/v1", partner))
            Assert.Equal(HttpStatusCode.Forbidden, otherTenant.StatusCode);

        var entries = await app.AuditAsync();
        Assert.Contains(entries, e => e.Actor == AppSecurityFixture.TenantA && e.Action == AuditActions.AccessDenied
            && e.Resource == $"federation/{AppSecurityFixture.FedB}" && e.Outcome == AuditOutcome.Denied);
        Assert.Contains(entries, e => e.Actor == "partner-x" && e.Action == AuditActions.AccessDenied && e.Resource == "tenant/insurer-y");

        // The app's own verification (against the anchored heads), then the verifier over the log as stored.
        using (var verify = await app.SendAsync("GET", "api/audit/verify", await app.Host.TokenAsync("auditor-x", Roles.Auditor)))
        {
            Assert.Equal(HttpStatusCode.OK, verify.StatusCode);
            using var json = JsonDocument.Parse(await verify.Content.ReadAsStringAsync());
            Assert.True(json.RootElement.GetProperty("intact").GetBoolean(), json.RootElement.GetProperty("summary").GetString());
            Assert.True(json.RootElement.GetProperty("entriesChecked").GetInt64() >= entries.Count);
        }
        var report = await AuditVerifier.VerifyAsync(app.Host.Audit, app.Host.Services.GetRequiredService<IKeyVault>());
        Assert.True(report.Intact, report.ToText());
    }

    [Fact]
    public async Task ABodyOverTheFunctionLimitIs413FromTheAppsGateBeforeBindingOrReading()
    {
        var function = HttpFunctions().Single(f => f.Name == "RegisterPartnerKeys");
        var limit = function.Info.GetCustomAttribute<RequestBodyLimitAttribute>()!.MaxBytes;
        Assert.True(limit < AppSecurityFixture.HostBodyLimit);
        var partner = await app.Host.TokenAsync("partner-body", Roles.Partner, "insurer-body");

        using (var small = await app.SendAsync("PUT", "api/partners/insurer-body/keys/v1", partner, new ByteArrayContent(new byte[16])))
            Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, small.StatusCode);

        // The body announces one byte over the function's limit and is held back until the server asks for it
        // (Expect: 100-continue, passed through the host to the worker): the gate answers from Content-Length.
        var (response, content) = await SendAnnouncingAsync(partner, "insurer-body", limit + 1);
        using (response)
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            Assert.Contains($"'RegisterPartnerKeys' accepts at most {limit}", await response.Content.ReadAsStringAsync());
            Assert.False(content.Started, "the body was asked for before it was refused");
        }
    }

    [Fact]
    public async Task ACompressedBodyIsReadAsItsJsonAndOneThatExpandsPastTheReadersLimitIs413()
    {
        // Enrollment is anonymous and reads its JSON body with a 64 KiB bound before it judges anything.
        var json = JsonSerializer.SerializeToUtf8Bytes(new { clientId = "compressed", certificatePem = new string('A', 600), nonce = "never-issued", signature = "AAAA" });
        async Task<(HttpStatusCode Status, string? Title)> EnrollAsync(byte[] body, string? encoding)
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            if (encoding is not null) content.Headers.ContentEncoding.Add(encoding);
            using var response = await app.SendAsync("POST", "api/federations/compressed-fed/enrollments", null, content);
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return (response.StatusCode, problem.RootElement.GetProperty("title").GetString());
        }
        static byte[] Compress(byte[] data, Func<Stream, Stream> encoder)
        {
            using var output = new MemoryStream();
            using (var stream = encoder(output)) stream.Write(data);
            return output.ToArray();
        }
        static byte[] Brotli(byte[] data) => Compress(data, s => new System.IO.Compression.BrotliStream(s, System.IO.Compression.CompressionLevel.SmallestSize));
        static byte[] Gzip(byte[] data) => Compress(data, s => new System.IO.Compression.GZipStream(s, System.IO.Compression.CompressionLevel.SmallestSize));

        var plain = await EnrollAsync(json, null);
        Assert.NotEqual("Malformed JSON", plain.Title);
        Assert.NotEqual(HttpStatusCode.RequestEntityTooLarge, plain.Status);
        // The same refusal for the same JSON, however it was encoded: the reader saw the decompressed body.
        Assert.Equal(plain, await EnrollAsync(Brotli(json), "br"));
        Assert.Equal(plain, await EnrollAsync(Gzip(json), "gzip"));
        // Brotli at the agents' settings (quality 11, window 22; tests/Serverless.Client.Tests/Agent/BodyCompressionTests.cs) reads back the same.
        var agentStyle = new byte[System.IO.Compression.BrotliEncoder.GetMaxCompressedLength(json.Length)];
        Assert.True(System.IO.Compression.BrotliEncoder.TryCompress(json, agentStyle, out var written, quality: 11, window: 22));
        Assert.Equal(plain, await EnrollAsync(agentStyle[..written], "br"));

        // 1 MiB of spaces compresses to well under a kilobyte; the reader stops at its 64 KiB after decompression.
        var bomb = Brotli(Encoding.UTF8.GetBytes("{\"clientId\":\"" + new string(' ', 1 << 20) + "\"}"));
        Assert.True(bomb.Length < 1024);
        var expanded = await EnrollAsync(bomb, "br");
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, expanded.Status);
        Assert.Equal("Body too large", expanded.Title);
    }

    [Fact]
    public async Task ABodyOverTheHostLimitIs413BeforeItIsRead()
    {
        var partner = await app.Host.TokenAsync("partner-host-body", Roles.Partner, "insurer-host-body");
        var (response, content) = await SendAnnouncingAsync(partner, "insurer-host-body", AppSecurityFixture.HostBodyLimit + 1);
        using (response)
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
            Assert.Contains($"{AppSecurityFixture.HostBodyLimit}", await response.Content.ReadAsStringAsync());
            Assert.False(content.Started, "the body was asked for before it was refused");
        }
    }

    /// <summary>A partner's key upload announcing <paramref name="announced"/> bytes, sent only if the server asks for it.</summary>
    private async Task<(HttpResponseMessage Response, StalledContent Content)> SendAnnouncingAsync(string token, string tenant, long announced)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var content = new StalledContent(announced);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"api/partners/{tenant}/keys/v1") { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.ExpectContinue = true;
        return (await app.Host.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token), content);
    }

    /// <summary>Announces a length, writes a little of it, then waits until the request is over.</summary>
    private sealed class StalledContent(long announced) : HttpContent
    {
        public bool Started { get; private set; }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            Started = true;
            await stream.WriteAsync(new byte[256 * 1024], cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override bool TryComputeLength(out long length)
        {
            length = announced;
            return true;
        }
    }

    [Fact]
    public async Task RotatingTheSigningKeyKeepsOldAndNewTokensValidAndDisablingAnOldVersionRefusesItsTokensAtOnce()
    {
        var vault = app.Host.Services.GetRequiredService<IKeyVault>();
        var admin = await app.Host.TokenAsync("root-old", Roles.Admin);
        var old = (await vault.GetCurrentVersionAsync("token-signing"))!.Id;

        using (var current = await app.SendAsync("POST", $"api/keys/token-signing/versions/{old.Version}/disable", admin))
            Assert.Equal(HttpStatusCode.Conflict, current.StatusCode);
        using (var unknown = await app.SendAsync("POST", "api/keys/token-signing/versions/no-such-version/disable", admin))
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        using (var rotate = await app.SendAsync("POST", "api/keys/token-signing/rotate", admin))
            Assert.True(rotate.StatusCode == HttpStatusCode.OK, await rotate.Content.ReadAsStringAsync());
        var fresh = await app.Host.TokenAsync("root-new", Roles.Admin);
        Assert.NotEqual(admin.Split('.')[0], fresh.Split('.')[0]); // another kid in the header
        using (var oldStillValid = await app.SendAsync("GET", "api/roles", admin))
            Assert.Equal(HttpStatusCode.OK, oldStillValid.StatusCode);
        using (var freshValid = await app.SendAsync("GET", "api/roles", fresh))
            Assert.Equal(HttpStatusCode.OK, freshValid.StatusCode);

        using (var disable = await app.SendAsync("POST", $"api/keys/token-signing/versions/{old.Version}/disable", fresh))
            Assert.True(disable.StatusCode == HttpStatusCode.OK, await disable.Content.ReadAsStringAsync());
        using (var refused = await app.SendAsync("GET", "api/roles", admin))
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode); // signed by the disabled version
        using (var stillValid = await app.SendAsync("GET", "api/roles", fresh))
            Assert.Equal(HttpStatusCode.OK, stillValid.StatusCode);

        var entries = await app.AuditAsync();
        Assert.Contains(entries, e => e.Action == AuditActions.KeyRotate && e.Resource == "key/token-signing" && e.Actor == "root-old");
        Assert.Contains(entries, e => e.Action == AuditActions.KeyDisable && e.Resource == "key/token-signing" && e.Actor == "root-new"
            && e.Detail!.Contains(old.Version, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ABadTokenIsAuditedOnce()
    {
        var federation = "fed-" + Guid.NewGuid().ToString("N")[..12];
        const string badToken = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.";
        using (var bad = await app.SendAsync("GET", $"api/federations/{federation}", badToken))
            Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        var entries = await app.AuditAsync();
        var failures = entries.Where(e => e.Resource.Contains(federation, StringComparison.Ordinal)).ToList();
        var failure = Assert.Single(failures);
        Assert.Equal(AuditActions.AuthenticationFailed, failure.Action);
        Assert.Equal(AuditOutcome.Failure, failure.Outcome);
        Assert.DoesNotContain(entries, e => (e.Detail ?? "").Contains(badToken, StringComparison.Ordinal) || e.Resource.Contains(badToken, StringComparison.Ordinal));

        // No token at all: the gate audits it, once too.
        var other = "fed-" + Guid.NewGuid().ToString("N")[..12];
        using (var missing = await app.SendAsync("GET", $"api/federations/{other}", token: null))
            Assert.Equal(HttpStatusCode.Unauthorized, missing.StatusCode);
        var second = Assert.Single(await app.AuditAsync(), e => e.Resource.Contains(other, StringComparison.Ordinal));
        Assert.Equal($"federation/{other}", second.Resource);
    }

    [Fact]
    public async Task ThePerFunctionRateLimitAnswers429WithRetryAfter()
    {
        // The app's limits are SecurityOptions.RateLimits' defaults (no app setting reads them): RoleTable has no
        // [EndpointRateLimit], so one principal gets PermitsPerEndpoint calls a window.
        var function = HttpFunctions().Single(f => f.Name == "RoleTable");
        Assert.Null(function.Info.GetCustomAttribute<EndpointRateLimitAttribute>());
        var permits = new RateLimitOptions().PermitsPerEndpoint;
        var admin = await app.Host.TokenAsync("root-rate", Roles.Admin);
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < permits + 1; i++)
        {
            var response = await app.SendAsync("GET", "api/roles", admin);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests) { limited = response; break; }
            response.Dispose();
        }
        // The window is a minute: all permits but at most a few (a window turning over mid-loop) are OK before the 429.
        Assert.NotNull(limited);
        using (limited)
        {
            Assert.True(statuses.Count >= permits / 2, $"429 after only {statuses.Count} calls");
            Assert.All(statuses[..^1], s => Assert.Equal(HttpStatusCode.OK, s));
            var retryAfter = int.Parse(limited.Headers.GetValues("Retry-After").Single());
            Assert.InRange(retryAfter, 1, 60);
            Assert.Equal("application/problem+json", limited.Content.Headers.ContentType?.MediaType);
        }
        // Another principal has its own budget.
        using var other = await app.SendAsync("GET", "api/roles", await app.Host.TokenAsync("root-rate-2", Roles.Admin));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task CheckpointsAreStoredEncryptedAndRotationThroughTheAdminFunctionRewrapsThem()
    {
        var store = app.Host.Services.GetRequiredService<CheckpointStore>();
        var name = "fed-x/round-" + Guid.NewGuid().ToString("N")[..8];
        await store.Store.PutAsync(name, new MemoryStream("weights"u8.ToArray()));
        var before = (await store.Store.GetEnvelopeInfoAsync(name))!.KeyId;
        await using (var raw = await store.Raw.GetAsync(name))
        {
            var bytes = await ReadAllAsync(raw!.Content);
            Assert.Equal("SLENV"u8.ToArray(), bytes[..5]);
            Assert.DoesNotContain("weights", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
        }
        // Whoever asks the app's provider for the checkpoint container gets the encrypting store.
        Assert.IsType<EncryptedBlobStore>(app.Host.Services.GetRequiredService<IBlobStoreProvider>().GetContainer("checkpoints"));

        using (var rotate = await app.SendAsync("POST", "api/keys/checkpoints-kek/rotate", await app.Host.TokenAsync("root-kek", Roles.Admin)))
        {
            Assert.True(rotate.StatusCode == HttpStatusCode.OK, await rotate.Content.ReadAsStringAsync());
            using var json = JsonDocument.Parse(await rotate.Content.ReadAsStringAsync());
            Assert.True(json.RootElement.GetProperty("rewrapped").GetInt32() >= 1);
        }
        var after = (await store.Store.GetEnvelopeInfoAsync(name))!.KeyId;
        Assert.NotEqual(before.Version, after.Version);
        await using (var read = await store.Store.GetAsync(name))
            Assert.Equal("weights"u8.ToArray(), await ReadAllAsync(read!.Content));

        using var compliance = await app.SendAsync("GET", "api/compliance", await app.Host.TokenAsync("auditor-compliance", Roles.Auditor));
        var text = await compliance.Content.ReadAsStringAsync();
        Assert.True(compliance.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal("application/json", compliance.Content.Headers.ContentType?.MediaType);
        using var report = JsonDocument.Parse(text);
        var encryption = report.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("rule").GetString()!.Contains("encryption at rest", StringComparison.Ordinal));
        Assert.True(encryption.GetProperty("passed").GetBoolean(), encryption.GetProperty("finding").GetString());
    }

    private static async Task<byte[]> ReadAllAsync(Stream stream)
    {
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer);
        return buffer.ToArray();
    }
}
