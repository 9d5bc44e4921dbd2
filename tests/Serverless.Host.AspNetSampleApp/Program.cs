using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// The ASP.NET Core integration: the worker serves HTTP triggers on its own Kestrel and reports its URI to
// the host in the HttpUri capability.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
// The worker's Kestrel logs every request line at Information, query string included, and a function
// key can be in the query (?code=): keep ASP.NET Core's own logs to warnings, as the product app must.
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
builder.Build().Run();
