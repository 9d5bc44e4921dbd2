using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.Hosting;

// The ASP.NET Core integration: the worker serves HTTP triggers on its own Kestrel and reports its URI to
// the host in the HttpUri capability.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Build().Run();
