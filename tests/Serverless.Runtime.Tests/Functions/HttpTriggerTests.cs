using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Functions;

public sealed class HttpTriggerTests : IAsyncLifetime
{
    private TestHost _host = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _host = await TestHost.StartAsync([typeof(HttpFunctions)], configure: b => b.Services.AddSingleton<Greeter>());
        _client = _host.CreateClient();
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    public sealed class Greeter
    {
        public string Greet(string name) => $"hello {name}";
    }

    public sealed record Order(string Item, int Quantity);

    public sealed class HttpFunctions(Greeter greeter)
    {
        [Function("Greet")]
        public string Greet([HttpTrigger("get", Route = "greet/{name}")] HttpRequest request, string name) => greeter.Greet(name);

        [Function("Orders")]
        public IResult CreateOrder([HttpTrigger("post", Route = "shops/{shop:int}/orders")] HttpRequest request, int shop, Order order, string? note,
            FunctionContext context) =>
            Results.Created($"/api/shops/{shop}/orders/1", new { shop, order.Item, order.Quantity, note, function = context.FunctionName, invocation = context.InvocationId });

        [Function("Boom")]
        public Task Boom([HttpTrigger("get")] HttpRequest request) =>
            throw new InvalidOperationException("secret connection string Password=hunter2 in a message");

        [Function("Typed")]
        public async Task<Order> Typed([HttpTrigger("get", Route = "typed")] HttpRequest request, CancellationToken cancellationToken)
        {
            await Task.Yield();
            return new Order("widget", 3);
        }

        [Function("Raw")]
        public async Task Raw([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "raw")] HttpContext context)
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            context.Response.StatusCode = 207;
            await context.Response.WriteAsync(new string(body.Reverse().ToArray()));
        }

        [Function("Count")]
        public int Count([HttpTrigger("get", Route = "count")] HttpRequest request, int times = 2) => times * 10;
    }

    private static async Task<JsonElement> ProblemAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
    }

    [Fact]
    public async Task Route_values_bind_to_parameters_and_services_are_injected()
    {
        Assert.Equal("hello ada", await _client.GetStringAsync("/api/greet/ada"));
    }

    [Fact]
    public async Task Json_body_route_and_query_bind_and_IResult_is_executed()
    {
        var response = await _client.PostAsJsonAsync("/api/shops/42/orders?note=urgent", new Order("bolt", 7));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("/api/shops/42/orders/1", response.Headers.Location?.ToString());
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(42, json.GetProperty("shop").GetInt32());
        Assert.Equal("bolt", json.GetProperty("item").GetString());
        Assert.Equal(7, json.GetProperty("quantity").GetInt32());
        Assert.Equal("urgent", json.GetProperty("note").GetString());
        Assert.Equal("Orders", json.GetProperty("function").GetString());
        Assert.Equal(32, json.GetProperty("invocation").GetString()!.Length);
    }

    [Fact]
    public async Task Route_constraints_apply()
    {
        var response = await _client.PostAsJsonAsync("/api/shops/abc/orders", new Order("bolt", 7));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        await ProblemAsync(response);
    }

    [Fact]
    public async Task Malformed_json_body_is_a_400_problem_naming_the_parameter()
    {
        var response = await _client.PostAsync("/api/shops/1/orders", new StringContent("{\"item\": \"bolt\", \"quantity\": ", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = await ProblemAsync(response);
        Assert.Equal(400, problem.GetProperty("status").GetInt32());
        Assert.Contains("'order'", problem.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Wrong_json_type_and_missing_body_are_400_problems()
    {
        var wrongType = await _client.PostAsync("/api/shops/1/orders", new StringContent("{\"item\": \"bolt\", \"quantity\": \"many\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, wrongType.StatusCode);
        await ProblemAsync(wrongType);
        var missing = await _client.PostAsync("/api/shops/1/orders", new StringContent("", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        var notJson = await _client.PostAsync("/api/shops/1/orders", new StringContent("item=bolt", Encoding.UTF8, "application/x-www-form-urlencoded"));
        Assert.Equal(HttpStatusCode.BadRequest, notJson.StatusCode);
    }

    [Fact]
    public async Task An_exception_becomes_a_500_problem_without_message_or_stack_trace()
    {
        var response = await _client.GetAsync("/api/Boom");
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        var problem = await ProblemAsync(response);
        Assert.Equal(500, problem.GetProperty("status").GetInt32());
        Assert.True(problem.TryGetProperty("traceId", out _));
        Assert.DoesNotContain("hunter2", text);
        Assert.DoesNotContain("InvalidOperationException", text);
        Assert.DoesNotContain(" at ", text);
        Assert.DoesNotContain(".cs:line", text);
    }

    [Fact]
    public async Task Objects_are_written_as_json_and_raw_context_access_works()
    {
        var order = await _client.GetFromJsonAsync<Order>("/api/typed");
        Assert.Equal(new Order("widget", 3), order);
        var raw = await _client.PutAsync("/api/raw", new StringContent("abc"));
        Assert.Equal((HttpStatusCode)207, raw.StatusCode);
        Assert.Equal("cba", await raw.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Query_values_convert_and_defaults_apply_and_bad_values_are_400()
    {
        Assert.Equal("50", await _client.GetStringAsync("/api/count?times=5"));
        Assert.Equal("20", await _client.GetStringAsync("/api/count"));
        var bad = await _client.GetAsync("/api/count?times=lots");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("times", (await ProblemAsync(bad)).GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Methods_not_listed_are_rejected()
    {
        var response = await _client.DeleteAsync("/api/greet/ada");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
    }

    [Fact]
    public async Task Health_reports_each_backend()
    {
        var response = await _client.GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Healthy", json.GetProperty("status").GetString());
        Assert.Equal("embedded", json.GetProperty("checks").GetProperty("blob").GetProperty("data").GetProperty("backend").GetString());
        Assert.Equal("Healthy", json.GetProperty("checks").GetProperty("queue").GetProperty("status").GetString());
    }
}
