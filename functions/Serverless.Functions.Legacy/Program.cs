using Serverless.Durable;
using Serverless.Runtime.Hosting;
using Serverless.Security.Hosting;

// The function app: the host with the durable engine and the security layer, running this assembly's
// [Function] methods. Options: --data-dir DIR, --port N, --urls URLS, --host-json FILE (docs/host.md).
var builder = FunctionsApplication.CreateBuilder(args);
builder.Services.AddServerlessSecurity();
builder.Services.AddDurableTask();
builder.Services.AddInference();
builder.Services.AddFederations();
builder.AddFunctions(typeof(Program).Assembly);
return await builder.RunAsync();
