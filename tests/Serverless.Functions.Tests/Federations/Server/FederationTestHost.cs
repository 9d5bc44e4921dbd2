using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Grpc.Net.Client;
using Microsoft.DurableTask.Client;
using Microsoft.DurableTask.Client.Grpc;
using Microsoft.Extensions.Logging.Abstractions;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Functions.Tests.App;
using Serverless.Security.Audit;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// The function app with its federation functions under the local host (<see cref="FunctionAppHost"/>), in a
/// fresh data directory with its own dev CA, and a Microsoft.DurableTask client on the host's sidecar.
/// </summary>
public sealed class FederationTestHost : IAsyncDisposable
{
    private readonly FunctionAppHost _app;
    private readonly GrpcChannel _channel;

    private FederationTestHost(FunctionAppHost app)
    {
        _app = app;
        _channel = GrpcChannel.ForAddress(app.Host.RpcAddress);
        Durable = new GrpcDurableTaskClient("federation-tests", new GrpcDurableTaskClientOptions { Channel = _channel }, NullLogger.Instance);
    }

    public Uri Address => _app.Address;
    public HttpClient Http => _app.Http;
    public string DataDirectory => _app.DataDirectory;
    public IServiceProvider Services => _app.Services;
    public DurableTaskClient Durable { get; }
    public FederationStore Store => _app.Store;
    public IAuditLog Audit => _app.Audit;

    public static async Task<FederationTestHost> StartAsync() => new(await FunctionAppHost.StartAsync());

    public Task<string> TokenAsync(string subject, string role, string? tenant = null) => _app.TokenAsync(subject, role, tenant);

    public async ValueTask DisposeAsync()
    {
        await Durable.DisposeAsync();
        _channel.Dispose();
        await _app.DisposeAsync();
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
