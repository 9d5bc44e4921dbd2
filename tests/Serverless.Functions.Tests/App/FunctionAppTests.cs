using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.Azure.Functions.Worker;
using Serverless.Functions.Hosting;
using Serverless.Security.Audit;
using Serverless.Security.Authorization;

namespace Serverless.Functions.Tests.App;

/// <summary>The app as built: what the worker's indexing wrote, and what it declares.</summary>
public sealed class FunctionAppBuildTests
{
    private static readonly Dictionary<Type, string> TriggerTypes = new()
    {
        [typeof(HttpTriggerAttribute)] = "httpTrigger",
        [typeof(QueueTriggerAttribute)] = "queueTrigger",
        [typeof(TimerTriggerAttribute)] = "timerTrigger",
        [typeof(OrchestrationTriggerAttribute)] = "orchestrationTrigger",
        [typeof(ActivityTriggerAttribute)] = "activityTrigger",
    };

    [Fact]
    public void FunctionsMetadataListsEveryFunctionWithItsRealTrigger()
    {
        using var metadata = JsonDocument.Parse(File.ReadAllText(Path.Combine(FunctionAppHost.AppDirectory, "functions.metadata")));
        var written = metadata.RootElement.EnumerateArray().ToDictionary(
            f => f.GetProperty("name").GetString()!,
            f => f.GetProperty("bindings").EnumerateArray().Select(b => b.GetProperty("type").GetString()!).Single(t => t.EndsWith("Trigger", StringComparison.Ordinal)));
        var declared = FunctionMethods.All().ToDictionary(f => f.Name, f => TriggerTypes[f.Method.GetParameters()
            .SelectMany(p => p.GetCustomAttributes()).Select(a => a.GetType()).Single(TriggerTypes.ContainsKey)]);
        Assert.Equal(declared.OrderBy(kv => kv.Key), written.OrderBy(kv => kv.Key));
        Assert.True(declared.Count >= 50, $"only {declared.Count} functions");
        foreach (var kind in TriggerTypes.Values) Assert.Contains(kind, written.Values);
    }

    [Fact]
    public void TheAppUsesNoLookAlikeOfTheWorkerOrDurableTask()
    {
        var app = typeof(FunctionMethods).Assembly;
        // Our code stops at storage: no look-alike host, engine or local host in the app's references.
        Assert.DoesNotContain(app.GetReferencedAssemblies(), a => a.Name is "Serverless.Durable" or "Serverless.Runtime" or "Serverless.Host");
        var used = app.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .SelectMany(m => m.GetParameters().Select(p => p.ParameterType).Concat(m.GetCustomAttributes().Select(a => a.GetType())).Append(m.ReturnType))
            .Select(t => t.Namespace ?? "")
            .Where(ns => ns.StartsWith("Serverless.Host", StringComparison.Ordinal) || ns.StartsWith("Serverless.Runtime", StringComparison.Ordinal))
            .Distinct().ToList();
        Assert.Empty(used);
        Assert.All(FunctionMethods.All(), f => Assert.Equal(typeof(FunctionAttribute), f.Method.GetCustomAttribute<FunctionAttribute>()!.GetType()));
    }

    [Fact]
    public void EveryHttpFunctionDeclaresAKnownPermissionOrIsAnonymous() =>
        Assert.Empty(SecurityStartup.DeclarationProblems(RolePermissionTable.Default));
}

/// <summary>The app running under the local host: health, the security gate, a queue trigger.</summary>
[Collection(FunctionAppCollection.Name)]
public sealed class FunctionAppTests(FunctionAppFixture app)
{
    [Fact]
    public async Task HealthReportsEachBackend()
    {
        using var response = await app.Host.Http.GetAsync("api/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Healthy", body.RootElement.GetProperty("status").GetString());
        foreach (var check in new[] { "blob", "queue", "durable" })
            Assert.Equal("Healthy", body.RootElement.GetProperty("checks").GetProperty(check).GetProperty("status").GetString());
    }

    [Fact]
    public async Task NoTokenIs401ProblemDetailsAndAudited()
    {
        using var response = await app.Host.Http.GetAsync("api/federations");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Contains(await AuditAsync(), e => e.Action == AuditActions.AuthenticationFailed && e.Resource == "ListFederations");
    }

    [Fact]
    public async Task APermissionTheRoleLacksIs403AndAudited()
    {
        var auditor = await app.Host.TokenAsync("auditor-1", "auditor");
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/federations") { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", auditor);
        using var response = await app.Host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(await AuditAsync(), e => e.Action == AuditActions.AccessDenied && e.Actor == "auditor-1" && e.Outcome == AuditOutcome.Denied);
    }

    [Fact]
    public async Task AGrantedTokenReachesTheFunction()
    {
        var operatorToken = await app.Host.TokenAsync("operator-1", "operator");
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/federations");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
        using var response = await app.Host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.ValueKind);
    }

    [Fact]
    public async Task ABadBodyIsAProblemDetails400AndCreatesNothing()
    {
        var operatorToken = await app.Host.TokenAsync("operator-1", "operator");
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/federations") { Content = new StringContent("not json", Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", operatorToken);
        using var bad = await app.Host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        Assert.Equal(400, JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetInt32());
    }

    [Fact]
    public async Task NoAnonymousEndpointShipsBesidesHealthAndEnrollment()
    {
        // The sample functions were anonymous and shipped in the production app (issue 20, Low): only the health probe and the
        // enrollment handshake (which proves a certificate key itself) may be reached without a token.
        var anonymous = Serverless.Functions.Hosting.FunctionMethods.All()
            .Where(f => Serverless.Functions.Hosting.FunctionMethods.IsHttp(f.Method) && f.Method.IsDefined(typeof(Microsoft.AspNetCore.Authorization.AllowAnonymousAttribute), inherit: true))
            .Select(f => f.Name).Order().ToArray();
        Assert.Equal(["Enroll", "EnrollmentChallenge", "Health"], anonymous);
        using var gone = await app.Host.Http.PostAsJsonAsync("api/samples/echo", new { message = "hello" });
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    private async Task<List<AuditEntry>> AuditAsync()
    {
        var entries = new List<AuditEntry>();
        await foreach (var e in app.Host.Audit.ReadAsync()) entries.Add(e);
        return entries;
    }
}

/// <summary>One running app for a collection of tests (a worker process takes seconds to start).</summary>
public sealed class FunctionAppFixture : IAsyncLifetime
{
    public FunctionAppHost Host { get; private set; } = null!;

    public async Task InitializeAsync() => Host = await FunctionAppHost.StartAsync();

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class FunctionAppCollection : ICollectionFixture<FunctionAppFixture>
{
    public const string Name = "function app under the local host";
}
