using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using Serverless.Functions.Federations.Services;
using Serverless.Functions.Hosting;
using Serverless.Telemetry;

// The function app on the Azure Functions isolated worker, with the ASP.NET Core integration for HTTP
// (HttpRequest in, IResult out). The same build output runs on Azure Functions and under the local host
// (runtime/Serverless.Host); app settings are in docs/host.md.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
// Kestrel logs each request line at Information, query string included, and a function key can be in
// the query (?code=): ASP.NET Core's own logs stay at warnings.
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
// Export only when OTEL_EXPORTER_OTLP_ENDPOINT or APPLICATIONINSIGHTS_CONNECTION_STRING is set (docs/telemetry.md);
// the worker's invocation spans continue the host's trace context.
builder.Services.AddServerlessTelemetry(builder.Configuration, "serverless-functions")?.UseFunctionsWorkerDefaults();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddAppStorage(builder.Configuration);
builder.AddAppSecurity();
builder.Services.AddInference(builder.Configuration);
builder.Services.AddFederations(o =>
{
    o.RequireClientCertificate = FederationOptions.ParseClientCertificateSetting(builder.Configuration[FederationOptions.ClientCertificateSetting]);
    if (builder.Configuration[FederationOptions.CaCertificateSetting] is { Length: > 0 } ca) o.CaCertificatePath = ca;
});
builder.Services.AddFraud(builder.Configuration);
// After the authorization gate: a federation client's every call is bound to its enrollment (and certificate).
builder.UseMiddleware<FederationClientMiddleware>();
builder.Build().Run();
