using Microsoft.Extensions.Logging;
using Serverless.Host;
using Serverless.Host.Http;

// serverless-host: runs an isolated-worker Functions app's build output locally (docs/host-next.md).
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: serverless-host <app build output directory> [--port N] [--keys FILE] [--data-dir DIR]");
    return args.Length == 0 ? 2 : 0;
}

string appDirectory = args[0];
int port = 7071;
string? keysFile = null;
string dataDirectory = ".serverless-data";
for (int i = 1; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--port" when i + 1 < args.Length && int.TryParse(args[i + 1], out int p) && p is >= 0 and <= 65535:
            port = p;
            i++;
            break;
        case "--keys" when i + 1 < args.Length:
            keysFile = args[++i];
            break;
        case "--data-dir" when i + 1 < args.Length:
            dataDirectory = args[++i];
            break;
        default:
            Console.Error.WriteLine($"serverless-host: unknown or incomplete option '{args[i]}'");
            return 2;
    }
}

using ILoggerFactory loggers = LoggerFactory.Create(logging => logging
    .AddSimpleConsole(console => { console.SingleLine = true; console.TimestampFormat = "HH:mm:ss "; })
    .AddFilter("Microsoft", LogLevel.Warning));
try
{
    keysFile ??= Path.Combine(appDirectory, ".serverless-host", "keys.json");
    await using LocalHost host = await LocalHost.StartAsync(new LocalHostOptions
    {
        AppDirectory = appDirectory,
        HttpPort = port,
        DataDirectory = dataDirectory,
        Keys = FunctionKeys.LoadOrCreate(keysFile),
        LoggerFactory = loggers,
    });
    Console.WriteLine($"Listening on {host.HttpAddress} ({host.FunctionNames.Count} functions; keys in {keysFile})");
    var stop = new TaskCompletionSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.TrySetResult(); };
    AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.TrySetResult();
    // A worker that exits is restarted by the host (with back-off); only Ctrl+C or SIGTERM stops it.
    await stop.Task;
    return 0;
}
catch (HostStartException e)
{
    Console.Error.WriteLine($"serverless-host: {e.Message}");
    return 1;
}
