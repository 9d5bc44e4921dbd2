using System.ComponentModel.DataAnnotations;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serverless.Security.Validation;

namespace Serverless.Security.Tests.Validation;

public sealed class JsonBodyTests : IAsyncLifetime
{
    public sealed record StartRound([property: Range(2, 1000)] int Clients, [property: Required, StringLength(64, MinimumLength = 1)] string Federation, double? Epsilon = null);

    private WebApplication _app = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseTestServer();
        builder.Services.AddProblemDetails();
        _app = builder.Build();
        _app.MapPost("/rounds", async (HttpRequest request) =>
        {
            var body = await JsonBody.ReadAsync<StartRound>(request, maxBytes: 256);
            return body.IsValid ? Results.Ok(body.Value) : body.Problem!;
        });
        await _app.StartAsync();
        _client = _app.GetTestClient();
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    private Task<HttpResponseMessage> PostAsync(string body, string mediaType = "application/json") =>
        _client.PostAsync("/rounds", new StringContent(body, Encoding.UTF8, mediaType));

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    [Fact]
    public async Task A_valid_body_passes()
    {
        var response = await PostAsync("""{"clients":4,"federation":"f1","epsilon":3.5}""");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Rule_violations_are_400_with_every_failing_field()
    {
        var response = await PostAsync("""{"clients":1,"federation":""}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await ProblemAsync(response)).GetProperty("errors");
        Assert.True(errors.TryGetProperty("Clients", out _));
        Assert.True(errors.TryGetProperty("Federation", out _));
    }

    [Theory]
    [InlineData("""{"clients":4,"federation":"f1","admin":true}""", "admin")]   // unknown member
    [InlineData("""{"clients":"four","federation":"f1"}""", "clients")]          // wrong type
    [InlineData("""{"clients":4,""", "")]                                          // truncated
    [InlineData("null", "null")]
    public async Task Malformed_bodies_are_400_problems(string body, string mentioned)
    {
        var response = await PostAsync(body);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(mentioned, (await ProblemAsync(response)).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Wrong_media_type_is_415_and_oversized_bodies_are_413()
    {
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, (await PostAsync("clients=4", "application/x-www-form-urlencoded")).StatusCode);
        var big = JsonSerializer.Serialize(new { clients = 4, federation = new string('x', 400) });
        var response = await PostAsync(big);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("256", (await ProblemAsync(response)).GetProperty("detail").GetString());
    }
}
