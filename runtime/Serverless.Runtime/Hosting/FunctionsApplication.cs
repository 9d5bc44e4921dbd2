using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Serverless.Runtime.Functions;
using Serverless.Runtime.Health;
using Serverless.Runtime.Hosting.HostJson;
using Serverless.Runtime.Http;
using Serverless.Runtime.Storage;

namespace Serverless.Runtime.Hosting;

/// <summary>Start-up settings the command line does not carry (mostly for tests and tools).</summary>
public sealed class FunctionsApplicationOptions
{
    public string[] Args { get; init; } = [];

    /// <summary>host.json's text; when null the file is read (--host-json, else next to the app, else the current directory).</summary>
    public string? HostJson { get; init; }

    /// <summary>Overrides every other source of the data directory.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>The clock for timers, queue visibility and leases; defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    public string? EnvironmentName { get; init; }

    /// <summary>
    /// host.json overrides ("extensions__queues__batchSize" -> "8"); when null they come from environment
    /// variables prefixed <c>AzureFunctionsJobHost__</c>, as in Azure Functions.
    /// </summary>
    public IReadOnlyDictionary<string, string>? HostJsonOverrides { get; init; }
}

/// <summary>Entry point, shaped like the isolated worker's <c>FunctionsApplication.CreateBuilder(args)</c>.</summary>
public static class FunctionsApplication
{
    public const string DefaultUrl = "http://127.0.0.1:7071";

    public static FunctionsApplicationBuilder CreateBuilder(string[] args) => new(new FunctionsApplicationOptions { Args = args });

    public static FunctionsApplicationBuilder CreateBuilder(FunctionsApplicationOptions options) => new(options);
}

/// <summary>
/// Configures the host: <see cref="Services"/> for DI (modules call <c>builder.Services.AddXxx()</c>),
/// <see cref="AddFunctions"/> for the assemblies to index, then <see cref="RunAsync"/> (or <see cref="Build"/>).
/// Command line: <c>--data-dir DIR</c>, <c>--port N</c>, <c>--urls URLS</c>, <c>--host-json FILE</c>.
/// </summary>
public sealed class FunctionsApplicationBuilder
{
    private readonly FunctionsApplicationOptions _options;
    private readonly CommandLine _commandLine;

    internal FunctionsApplicationBuilder(FunctionsApplicationOptions options)
    {
        _options = options;
        _commandLine = CommandLine.Parse(options.Args);
        WebApplicationBuilder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = _commandLine.Remaining,
            EnvironmentName = options.EnvironmentName,
            ContentRootPath = Directory.GetCurrentDirectory(),
        });
        var urls = _commandLine.Urls ?? (_commandLine.Port is { } port ? $"http://127.0.0.1:{port}" : null);
        if (urls is not null) WebApplicationBuilder.WebHost.UseUrls(urls);
        else if (string.IsNullOrEmpty(WebApplicationBuilder.Configuration["urls"])) WebApplicationBuilder.WebHost.UseUrls(FunctionsApplication.DefaultUrl);

        var services = Services;
        services.AddSingleton(options.TimeProvider ?? TimeProvider.System);
        services.AddHostJsonSection<LoggingOptions>("logging", LoggingOptions.Validate);
        services.AddHostJsonSection<QueuesOptions>("extensions.queues", QueuesOptions.Validate);
        services.AddHostJsonSection<StorageOptions>("storage", StorageOptions.Validate);
        services.AddSingleton<IOptions<HostRootOptions>>(sp => Options.Create(sp.GetRequiredService<HostJsonDocument>().Get<HostRootOptions>("")));
        services.AddProblemDetails();
        services.AddSingleton<FunctionCatalog>();
        services.AddSingleton<IFunctionCatalog>(sp => sp.GetRequiredService<FunctionCatalog>());
        services.AddSingleton<IFunctionExecutor, FunctionExecutor>();
        services.AddHostedService<FunctionListeners>();
        StorageRegistration.AddStores(services);
    }

    /// <summary>The underlying ASP.NET Core builder (for example <c>WebHost.UseTestServer()</c> in tests).</summary>
    public WebApplicationBuilder WebApplicationBuilder { get; }

    public IServiceCollection Services => WebApplicationBuilder.Services;
    public ConfigurationManager Configuration => WebApplicationBuilder.Configuration;
    public ILoggingBuilder Logging => WebApplicationBuilder.Logging;

    /// <summary>Indexes the public <c>[Function]</c> methods of <paramref name="assembly"/>.</summary>
    public FunctionsApplicationBuilder AddFunctions(Assembly assembly)
    {
        Services.AddSingleton(new FunctionAssembly(assembly));
        return this;
    }

    /// <summary>Indexes the <c>[Function]</c> methods of the given classes only (tests, or apps that pick functions explicitly).</summary>
    public FunctionsApplicationBuilder AddFunctions(params Type[] functionClasses)
    {
        foreach (var type in functionClasses)
            if (!type.IsPublic && !type.IsNestedPublic) throw new ArgumentException($"{type} must be public to hold functions.", nameof(functionClasses));
        Services.AddSingleton(new FunctionAssembly(functionClasses[0].Assembly, functionClasses));
        return this;
    }

    /// <summary>Adds an invocation middleware (outermost first).</summary>
    public FunctionsApplicationBuilder UseMiddleware<T>() where T : class, IFunctionsWorkerMiddleware
    {
        Services.AddFunctionsMiddleware<T>();
        return this;
    }

    /// <summary>
    /// Reads and validates host.json, indexes the functions and maps the endpoints.
    /// </summary>
    /// <exception cref="HostJsonException">host.json is invalid.</exception>
    /// <exception cref="FunctionIndexException">a function is invalid.</exception>
    public WebApplication Build()
    {
        var sections = Services.Where(d => d.ServiceType == typeof(HostJsonSectionRegistration))
            .Select(d => (HostJsonSectionRegistration)d.ImplementationInstance!).ToList();
        var overrides = _options.HostJsonOverrides ?? Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Where(e => ((string)e.Key).StartsWith(HostJsonDocument.OverridePrefix, StringComparison.OrdinalIgnoreCase))
            .ToDictionary(e => ((string)e.Key)[HostJsonDocument.OverridePrefix.Length..], e => (string?)e.Value ?? "");
        var hostJson = HostJsonDocument.Load(_options.HostJson ?? ReadHostJsonFile(), sections, overrides);
        Services.AddSingleton(hostJson);

        var logging = hostJson.Get<LoggingOptions>("logging");
        foreach (var (category, level) in logging.LogLevel)
        {
            var parsed = Enum.Parse<LogLevel>(level, ignoreCase: true);
            if (string.Equals(category, "default", StringComparison.OrdinalIgnoreCase)) Logging.SetMinimumLevel(parsed);
            else Logging.AddFilter(category, parsed);
        }

        var storage = hostJson.Get<StorageOptions>("storage");
        var fromEnvironment = Environment.GetEnvironmentVariable("SERVERLESS_DATA_DIR");
        var dataDirectory = _options.DataDirectory ?? _commandLine.DataDirectory
            ?? (string.IsNullOrEmpty(fromEnvironment) ? null : fromEnvironment);
        dataDirectory = Path.GetFullPath(dataDirectory ?? storage.DataDirectory);
        Directory.CreateDirectory(dataDirectory);
        Services.AddSingleton(new DataDirectory(dataDirectory));

        var app = WebApplicationBuilder.Build();
        var catalog = app.Services.GetRequiredService<IFunctionCatalog>(); // indexing errors surface here, before anything listens
        app.Services.GetRequiredService<IFunctionExecutor>();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.MapFunctionsHealth();
        app.MapHttpFunctions(catalog);

        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Serverless.Runtime.Host");
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            foreach (var address in addresses)
                Console.WriteLine($"Functions host listening on {address} (health: {address.TrimEnd('/')}/api/health)");
            logger.LogInformation("{Count} functions indexed; data directory {DataDirectory}", catalog.Functions.Count, dataDirectory);
        });
        return app;
    }

    /// <summary>Builds and runs until stopped. Configuration errors print one line each to stderr and return 1.</summary>
    public async Task<int> RunAsync()
    {
        if (_commandLine.Error is { } error)
        {
            await Console.Error.WriteLineAsync(error).ConfigureAwait(false);
            return 2;
        }
        WebApplication app;
        try
        {
            app = Build();
        }
        catch (Exception e) when (e is HostJsonException or FunctionIndexException)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return 1;
        }
        await app.RunAsync().ConfigureAwait(false);
        return 0;
    }

    private string? ReadHostJsonFile()
    {
        if (_commandLine.HostJsonPath is { } explicitPath)
        {
            return File.Exists(explicitPath)
                ? File.ReadAllText(explicitPath)
                : throw new HostJsonException($"host.json: (file): '{explicitPath}' does not exist");
        }
        foreach (var candidate in new[] { Path.Combine(AppContext.BaseDirectory, "host.json"), Path.Combine(Directory.GetCurrentDirectory(), "host.json") })
            if (File.Exists(candidate)) return File.ReadAllText(candidate);
        return null;
    }

    /// <summary>The host's own options; everything else goes to ASP.NET Core.</summary>
    private sealed record CommandLine(string[] Remaining, string? DataDirectory, int? Port, string? Urls, string? HostJsonPath, string? Error)
    {
        public static CommandLine Parse(string[] args)
        {
            var remaining = new List<string>();
            string? dataDirectory = null, urls = null, hostJson = null, error = null;
            int? port = null;
            for (var i = 0; i < args.Length; i++)
            {
                var arg = args[i];
                string? Value()
                {
                    var eq = arg.IndexOf('=');
                    if (eq > 0) return arg[(eq + 1)..];
                    if (i + 1 < args.Length) return args[++i];
                    error ??= $"error: {arg} needs a value";
                    return null;
                }
                var name = arg.Split('=')[0];
                switch (name)
                {
                    case "--data-dir": dataDirectory = Value(); break;
                    case "--urls": urls = Value(); break;
                    case "--host-json": hostJson = Value(); break;
                    case "--port":
                        var text = Value();
                        if (!int.TryParse(text, out var p) || p is < 0 or > 65535) error ??= $"error: --port must be 0-65535, got '{text}'";
                        else port = p;
                        break;
                    case "--environment": remaining.Add(arg); if (!arg.Contains('=') && i + 1 < args.Length) remaining.Add(args[++i]); break;
                    default:
                        error ??= $"error: unknown option '{arg}' (options: --data-dir DIR, --port N, --urls URLS, --host-json FILE, --environment NAME)";
                        break;
                }
            }
            return new CommandLine([.. remaining], dataDirectory, port, urls, hostJson, error);
        }
    }
}

/// <summary>Registration helpers for modules.</summary>
public static class FunctionsServiceCollectionExtensions
{
    /// <summary>Adds an invocation middleware (a singleton); registration order is execution order, outermost first.</summary>
    public static IServiceCollection AddFunctionsMiddleware<T>(this IServiceCollection services) where T : class, IFunctionsWorkerMiddleware
    {
        if (services.Any(d => d.ImplementationInstance is MiddlewareRegistration r && r.MiddlewareType == typeof(T))) return services;
        services.AddSingleton<T>();
        services.AddSingleton(new MiddlewareRegistration(typeof(T)));
        return services;
    }

    /// <summary>Adds a parameter binder (a singleton), asked before the built-in bindings.</summary>
    public static IServiceCollection AddFunctionParameterBinder<T>(this IServiceCollection services) where T : class, IFunctionParameterBinder
    {
        services.AddSingleton<IFunctionParameterBinder, T>();
        return services;
    }

    /// <summary>Indexes the public <c>[Function]</c> methods of <paramref name="assembly"/> (the durable engine adds its own built-in functions this way, if any).</summary>
    public static IServiceCollection AddFunctionsFromAssembly(this IServiceCollection services, Assembly assembly)
    {
        services.AddSingleton(new FunctionAssembly(assembly));
        return services;
    }
}
