using Serverless.Runtime.Hosting;

// The function app: index this assembly's [Function] methods and run them on the host.
// Options: --data-dir DIR, --port N, --urls URLS, --host-json FILE (see docs/host.md).
var builder = FunctionsApplication.CreateBuilder(args);
builder.AddFunctions(typeof(Program).Assembly);
return await builder.RunAsync();
