using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using Serverless.Telemetry;

// The ASP.NET Core integration: the worker serves HTTP triggers on its own Kestrel and reports its URI to
// the host in the HttpUri capability.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
// The worker's Kestrel logs every request line at Information, query string included, and a function
// key can be in the query (?code=): keep ASP.NET Core's own logs to warnings, as the product app must.
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
// As the product app: spans and metrics only when OTEL_EXPORTER_OTLP_ENDPOINT is set (the tracing benchmark sets it).
builder.Services.AddServerlessTelemetry(builder.Configuration, "aspnet-sample-app")?.UseFunctionsWorkerDefaults();
builder.Build().Run();
