using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Tests.Support;

namespace Serverless.Runtime.Tests.Functions;

/// <summary>The extension points other modules use: middleware, custom triggers and bindings, the catalog, health.</summary>
public sealed class ExtensibilityTests
{
    // --- a "module" defined here, as the durable engine or security layer would define theirs ---

    [AttributeUsage(AttributeTargets.Method)]
    public sealed class RequiresRoleAttribute(string role) : Attribute
    {
        public string Role { get; } = role;
    }

    /// <summary>Short-circuits HTTP calls without the role header; records the order it ran in.</summary>
    public sealed class RoleMiddleware(CallLog log) : IFunctionsWorkerMiddleware
    {
        public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
        {
            log.Add($"role>{context.FunctionName}");
            var role = context.Definition.GetAttribute<RequiresRoleAttribute>()?.Role;
            if (role is not null && context.HttpContext?.Request.Headers["x-role"].ToString() != role)
            {
                context.Result = Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Forbidden");
                return;
            }
            context.Items["checked-role"] = role;
            await next(context);
            log.Add($"role<{context.FunctionName}");
        }
    }

    public sealed class OuterMiddleware(CallLog log) : IFunctionsWorkerMiddleware
    {
        public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
        {
            log.Add("outer>");
            await next(context);
            log.Add("outer<");
        }
    }

    public sealed class CallLog
    {
        private readonly List<string> _entries = [];
        public void Add(string s) { lock (_entries) _entries.Add(s); }
        public string[] Entries { get { lock (_entries) return [.. _entries]; } }
    }

    public sealed class WorkTriggerAttribute(string name) : TriggerBindingAttribute
    {
        public override string TriggerKind => "work";
        public string Name { get; } = name;
    }

    public sealed class WorkClientAttribute : InputBindingAttribute;

    public sealed record WorkItem(string Payload);

    public sealed class WorkClient
    {
        public string Describe() => "work-client";
    }

    /// <summary>Binds [WorkTrigger] parameters from the payload and [WorkClient] from DI.</summary>
    public sealed class WorkBinder : IFunctionParameterBinder
    {
        public bool CanBind(FunctionDefinition function, ParameterInfo parameter) =>
            parameter.GetCustomAttribute<WorkTriggerAttribute>() is not null || parameter.GetCustomAttribute<WorkClientAttribute>() is not null;

        public ValueTask<object?> BindAsync(FunctionContext context, ParameterInfo parameter) =>
            ValueTask.FromResult<object?>(parameter.GetCustomAttribute<WorkClientAttribute>() is not null
                ? context.InstanceServices.GetRequiredService<WorkClient>()
                : context.TriggerPayload);
    }

    public sealed class ModuleFunctions(CallLog log)
    {
        [Function("Secret")]
        [RequiresRole("auditor")]
        public string Secret([HttpTrigger("get", Route = "secret")] HttpRequest request, FunctionContext context) =>
            $"secret for {context.Items["checked-role"]}";

        [Function("DoWork")]
        public string DoWork([WorkTrigger("jobs")] WorkItem item, FunctionContext context)
        {
            log.Add($"work:{item.Payload}");
            return item.Payload.ToUpperInvariant();
        }

        [Function("StartWork")]
        public string StartWork([HttpTrigger("post", Route = "work")] HttpRequest request, [WorkClient] WorkClient client) => client.Describe();
    }

    public sealed class NoBinderFunctions
    {
        [Function("Orphan")]
        public void Orphan([WorkTrigger("x")] WorkItem item) { }
    }

    private static void AddModule(FunctionsApplicationBuilder builder)
    {
        builder.Services.AddSingleton<CallLog>();
        builder.Services.AddSingleton<WorkClient>();
        builder.Services.AddFunctionParameterBinder<WorkBinder>();
        builder.Services.AddFunctionsMiddleware<OuterMiddleware>();
        builder.Services.AddFunctionsMiddleware<RoleMiddleware>();
        builder.Services.AddHealthChecks().AddCheck("work", () => HealthCheckResult.Degraded("work store warming up"));
    }

    [Fact]
    public async Task Middleware_runs_in_registration_order_and_can_short_circuit_with_a_problem()
    {
        await using var host = await TestHost.StartAsync([typeof(ModuleFunctions)], configure: AddModule);
        var client = host.CreateClient();

        var denied = await client.GetAsync("/api/secret");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Equal("application/problem+json", denied.Content.Headers.ContentType?.MediaType);

        var request = new HttpRequestMessage(HttpMethod.Get, "/api/secret");
        request.Headers.Add("x-role", "auditor");
        var allowed = await client.SendAsync(request);
        Assert.Equal("secret for auditor", await allowed.Content.ReadAsStringAsync());

        var log = host.Services.GetRequiredService<CallLog>().Entries;
        Assert.Equal(["outer>", "role>Secret", "outer<", "outer>", "role>Secret", "role<Secret", "outer<"], log);
    }

    [Fact]
    public async Task A_module_trigger_runs_through_the_executor_and_pipeline_and_returns_the_result()
    {
        await using var host = await TestHost.StartAsync([typeof(ModuleFunctions)], configure: AddModule);
        var catalog = host.Services.GetRequiredService<IFunctionCatalog>();
        var function = Assert.Single(catalog.Functions, f => f.Trigger is WorkTriggerAttribute);
        Assert.Equal("work", function.TriggerKind);
        Assert.Equal("DoWork", function.Name);

        var executor = host.Services.GetRequiredService<IFunctionExecutor>();
        var result = await executor.ExecuteAsync(function, new WorkItem("abc"));
        Assert.Equal("ABC", result);
        Assert.Equal(["outer>", "role>DoWork", "work:abc", "role<DoWork", "outer<"], host.Services.GetRequiredService<CallLog>().Entries);
    }

    [Fact]
    public async Task An_input_binding_from_a_module_binds_in_an_http_function()
    {
        await using var host = await TestHost.StartAsync([typeof(ModuleFunctions)], configure: AddModule);
        var response = await host.CreateClient().PostAsync("/api/work", null);
        Assert.Equal("work-client", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_catalog_describes_every_function_with_its_attributes()
    {
        await using var host = await TestHost.StartAsync([typeof(ModuleFunctions)], configure: AddModule);
        var catalog = host.Services.GetRequiredService<IFunctionCatalog>();
        Assert.Equal(["DoWork", "Secret", "StartWork"], catalog.Functions.Select(f => f.Name));
        var secret = catalog.Find("secret")!;
        Assert.Equal("http", secret.TriggerKind);
        Assert.Equal("api/secret", secret.Route);
        Assert.Equal(["GET"], secret.HttpMethods);
        Assert.Equal("auditor", secret.GetAttribute<RequiresRoleAttribute>()!.Role);
        Assert.Equal(typeof(ModuleFunctions), secret.ClassType);
        Assert.Null(catalog.Find("nope"));
    }

    [Fact]
    public async Task Module_health_checks_appear_in_api_health()
    {
        await using var host = await TestHost.StartAsync([typeof(ModuleFunctions)], configure: AddModule);
        var response = await host.CreateClient().GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Degraded", json.GetProperty("checks").GetProperty("work").GetProperty("status").GetString());
        Assert.Equal("Healthy", json.GetProperty("checks").GetProperty("blob").GetProperty("status").GetString());
    }

    [Fact]
    public async Task A_trigger_without_a_registered_binder_stops_the_host_naming_the_function()
    {
        var e = await Assert.ThrowsAsync<FunctionIndexException>(() => TestHost.StartAsync([typeof(NoBinderFunctions)]));
        Assert.Contains("function 'Orphan'", e.Message);
        Assert.Contains("[WorkTriggerAttribute]", e.Message);
    }
}
