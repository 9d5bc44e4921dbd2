using Serverless.Host;
using Serverless.Host.Http;
using Serverless.Telemetry;

// serverless-host: runs an isolated-worker Functions app's build output locally (docs/host.md).
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: serverless-host <app build output directory> [--port N] [--keys FILE] [--data-dir DIR] [--cert SERVER.pfx [--client-cert optional|required]]");
    return args.Length == 0 ? 2 : 0;
}

string appDirectory = args[0];
int port = 7071;
string? keysFile = null;
string dataDirectory = ".serverless-data";
string? certificateFile = null;
var clientCertificates = Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.NoCertificate;
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
        case "--cert" when i + 1 < args.Length:
            certificateFile = args[++i];
            break;
        // As the Functions front end's clientCertMode: the certificate is asked for (optional) or demanded (required)
        // in the TLS handshake and forwarded to the app, which validates it.
        case "--client-cert" when i + 1 < args.Length && args[i + 1] is "optional" or "required":
            clientCertificates = args[++i] == "required"
                ? Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.RequireCertificate
                : Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate;
            break;
        default:
            Console.Error.WriteLine($"serverless-host: unknown or incomplete option '{args[i]}'");
            return 2;
    }
}

// Traces, metrics and logs go out only when OTEL_EXPORTER_OTLP_ENDPOINT or APPLICATIONINSIGHTS_CONNECTION_STRING is set
// (docs/telemetry.md); the worker inherits the variables and exports on its own.
using TelemetryProviders? telemetry = TelemetrySetup.Start("serverless-host", serverSpans: true);
using ILoggerFactory loggers = LoggerFactory.Create(logging =>
{
    logging.AddSimpleConsole(console => { console.SingleLine = true; console.TimestampFormat = "HH:mm:ss "; })
        .AddFilter("Microsoft", LogLevel.Warning);
    telemetry?.AddLogging(logging);
});
if (clientCertificates != Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.NoCertificate && certificateFile is null)
{
    Console.Error.WriteLine("serverless-host: --client-cert needs --cert (client certificates exist only over HTTPS)");
    return 2;
}
try
{
    keysFile ??= Path.Combine(appDirectory, ".serverless-host", "keys.json");
    using var certificate = certificateFile is null ? null : LoadCertificate(certificateFile);
    await using LocalHost host = await LocalHost.StartAsync(new LocalHostOptions
    {
        AppDirectory = appDirectory,
        HttpPort = port,
        DataDirectory = dataDirectory,
        Keys = FunctionKeys.LoadOrCreate(keysFile),
        HttpsCertificate = certificate,
        ClientCertificates = clientCertificates,
        LoggerFactory = loggers,
    });
    Console.WriteLine($"Listening on {host.HttpAddress} ({host.FunctionNames.Count} functions; keys in {keysFile})");
    var stop = new TaskCompletionSource();
    // SIGINT and SIGTERM stop the host in order (listeners, HTTP, durable engine, worker) and exit 0.
    using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
    using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
    void Stop(System.Runtime.InteropServices.PosixSignalContext signal)
    {
        signal.Cancel = true;
        stop.TrySetResult();
    }
    // A worker that exits is restarted by the host (with back-off); only Ctrl+C or SIGTERM stops it.
    await stop.Task;
    return 0;
}
catch (HostStartException e)
{
    Console.Error.WriteLine($"serverless-host: {e.Message}");
    return 1;
}
catch (System.Security.Cryptography.CryptographicException e)
{
    Console.Error.WriteLine($"serverless-host: --cert {certificateFile}: {e.Message}");
    return 1;
}

static System.Security.Cryptography.X509Certificates.X509Certificate2 LoadCertificate(string path) =>
    File.Exists(path)
        ? System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(path, password: null)
        : throw new HostStartException($"--cert {path}: no such file");
