using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Durable;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations;
using Serverless.Functions.Federations.Services;
using Serverless.Runtime.Hosting;
using Serverless.Security;
using Serverless.Security.Audit;
using Serverless.Security.Hosting;
using Serverless.Security.Identity;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// The function app with the federation functions, in this process, on a real Kestrel port at
/// 127.0.0.1, over the embedded stores in a fresh data directory with its own dev CA.
/// </summary>
public sealed class FederationTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FederationTestHost(WebApplication app, string dataDirectory, Uri address)
    {
        _app = app;
        DataDirectory = dataDirectory;
        Address = address;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public Uri Address { get; }
    public HttpClient Http { get; }
    public string DataDirectory { get; }
    public IServiceProvider Services => _app.Services;
    public DurableTaskClient Durable => Services.GetRequiredService<DurableTaskClient>();
    public FederationStore Store => Services.GetRequiredService<FederationStore>();
    public IAuditLog Audit => Services.GetRequiredService<IAuditLog>();

    public static async Task<FederationTestHost> StartAsync()
    {
        var dir = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "federation-host-" + Guid.NewGuid().ToString("N"))).FullName;
        DevTools.CreateCertificateAuthority(dir);
        const string hostJson = """
            {
              "version": "2.0",
              "functionTimeout": "00:05:00",
              "logging": { "logLevel": { "default": "Warning" } },
              "extensions": {
                "durableTask": { "hubName": "federations", "minPollingInterval": "00:00:00.010", "maxPollingInterval": "00:00:00.100",
                                 "storageProvider": { "type": "sqlite", "durability": "normal" } }
              }
            }
            """;
        var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
        {
            Args = ["--port", "0"],
            HostJson = hostJson,
            DataDirectory = dir,
            HostJsonOverrides = new Dictionary<string, string>(),
        });
        builder.Services.AddServerlessSecurity(o => o.AddSecurityFunctions = false);
        builder.Services.AddDurableTask();
        builder.Services.AddFederations();
        builder.AddFunctions(typeof(FederationFunctions), typeof(EnrollmentFunctions), typeof(RoundFunctions), typeof(ModelFunctions),
            typeof(RoundOrchestration), typeof(RoundActivities));
        var app = builder.Build();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new FederationTestHost(app, dir, new Uri(address.TrimEnd('/') + "/"));
    }

    public Task<string> TokenAsync(string subject, string role, string? tenant = null) =>
        Services.GetRequiredService<DevTokenIssuer>().IssueAsync(new TokenRequest(subject, [role], tenant));

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        try { Directory.Delete(DataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Small HTTP helpers shared by the federation tests.</summary>
public static class FederationHttpClient
{
    public static async Task<HttpResponseMessage> SendAsync(this HttpClient http, HttpMethod method, string path, string? token, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) request.Content = new StringContent(JsonSerializer.Serialize(body, body.GetType(), RoundJson.Options), Encoding.UTF8, "application/json");
        return await http.SendAsync(request);
    }

    public static async Task<T> ReadAsync<T>(this HttpResponseMessage response) =>
        (await response.Content.ReadFromJsonAsync<T>(RoundJson.Options))!;

    /// <summary>Creates a federation as an operator; asserts 201.</summary>
    public static async Task<FederationView> CreateFederationAsync(this HttpClient http, string operatorToken, FederationConfig config)
    {
        using var response = await http.SendAsync(HttpMethod.Post, RoundRoutes.Federations(), operatorToken, config);
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
        return await response.ReadAsync<FederationView>();
    }
}
