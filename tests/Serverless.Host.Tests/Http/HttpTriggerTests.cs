using System.Net;
using System.Text;
using System.Text.Json;

namespace Serverless.Host.Tests.Http;

/// <summary>HTTP triggers of the real sample app, run by the local host over the worker protocol.</summary>
[Collection(SampleAppCollection.Name)]
public sealed class HttpTriggerTests(SampleAppHost host)
{
    private HttpClient Client => host.Client;

    [Fact]
    public void The_host_loads_every_function_the_worker_indexed()
    {
        string[] durable = ["AppendStep", "Approval", "Counter", "DurableTimer", "FailTwice", "FanOutFanIn", "GetOrchestrationStatus", "HelloSequence", "HelloSequence5",
            "Parent", "Retrying", "SayHello", "Sequence20", "Square", "StartOrchestration", "Waiting"];
        string[] expected = ["Default", "Doomed", "Echo", "Flaky", "Hang", "OnStartup", "Secret", "Stall", "Status", "Throws", "Upper", "Yearly", .. durable];
        Assert.Equal(expected.Order(StringComparer.Ordinal), host.FunctionNames.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Route_parameters_query_header_and_body_reach_the_function()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/items/books/42?q=hello%20world&other=1")
        {
            Content = new StringContent("the body \u00e9", Encoding.UTF8, "text/plain"),
        };
        request.Headers.Add("x-sample", "abc");

        using HttpResponseMessage response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("books", Assert.Single(response.Headers.GetValues("x-sample-echo")));
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement root = echo.RootElement;
        Assert.Equal("POST", root.GetProperty("Method").GetString());
        Assert.Equal("books", root.GetProperty("Category").GetString());
        Assert.Equal(42, root.GetProperty("Id").GetInt32());
        Assert.Equal("hello world", root.GetProperty("Query").GetString());
        Assert.Equal("abc", root.GetProperty("Header").GetString());
        Assert.Equal("the body \u00e9", root.GetProperty("Body").GetString());
    }

    [Fact]
    public async Task A_get_without_query_header_or_body_binds_nulls_and_an_empty_body()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/items/tools/7");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("GET", echo.RootElement.GetProperty("Method").GetString());
        Assert.Equal(7, echo.RootElement.GetProperty("Id").GetInt32());
        Assert.Equal(JsonValueKind.Null, echo.RootElement.GetProperty("Query").ValueKind);
        Assert.Equal(JsonValueKind.Null, echo.RootElement.GetProperty("Header").ValueKind);
        Assert.Equal(string.Empty, echo.RootElement.GetProperty("Body").GetString());
    }

    [Fact]
    public async Task A_route_constraint_that_does_not_match_is_404_and_the_function_does_not_run()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/items/books/not-a-number");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData(201)]
    [InlineData(202)]
    [InlineData(404)]
    [InlineData(409)]
    [InlineData(503)]
    public async Task The_status_the_function_sets_reaches_the_caller(int code)
    {
        using HttpResponseMessage response = await Client.PutAsync($"api/status/{code}", content: null);

        Assert.Equal((HttpStatusCode)code, response.StatusCode);
    }

    [Fact]
    public async Task A_function_without_a_route_is_served_at_its_name_for_every_method()
    {
        foreach (HttpMethod method in new[] { HttpMethod.Get, HttpMethod.Post, HttpMethod.Delete, HttpMethod.Patch })
        {
            using HttpResponseMessage response = await Client.SendAsync(new HttpRequestMessage(method, "api/Default"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(method.Method, await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task A_function_that_throws_is_a_500_with_nothing_of_the_exception_in_the_reply()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/throws");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.DoesNotContain("sample failure", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Concurrent_invocations_each_get_their_own_reply()
    {
        // The worker answers out of order; each reply must still go to the request it belongs to.
        const int count = 32;
        var calls = Enumerable.Range(0, count).Select(async i =>
        {
            using HttpResponseMessage response = await Client.PostAsync($"api/items/c{i}/{i}", new StringContent($"body {i}"));
            using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return (i, Category: echo.RootElement.GetProperty("Category").GetString(), Id: echo.RootElement.GetProperty("Id").GetInt32(), Body: echo.RootElement.GetProperty("Body").GetString());
        });

        foreach (var (i, category, id, body) in await Task.WhenAll(calls))
        {
            Assert.Equal($"c{i}", category);
            Assert.Equal(i, id);
            Assert.Equal($"body {i}", body);
        }
    }
}
