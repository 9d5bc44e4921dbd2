using System.Text;

// serverless-client: command-line client of the platform. One file per command group in Commands/.
// Spans and metrics go out only when OTEL_EXPORTER_OTLP_ENDPOINT (or the Application Insights connection string) is set.
using (var telemetry = Serverless.Telemetry.TelemetrySetup.Start(args is ["agent", ..] ? "serverless-agent" : "serverless-client"))
{
    return await Serverless.Client.ClientProgram.RunAsync(args, Console.Out, Console.Error);
}

namespace Serverless.Client
{
    /// <summary>The CLI's entry point, callable in-process (tests, an embedding tool) with its own output and error writers: the program's only public type.</summary>
    public static class ClientProgram
    {
        // Commands write through Console; an in-process caller's writers are routed per async flow, so
        // concurrent callers (and anything else writing to the console) never see each other's lines.
        private static readonly AsyncLocal<(TextWriter Out, TextWriter Error)?> Route = new();
        private static readonly Lock InstallGate = new();
        private static bool _installed;

        internal static RootCommand CreateRoot()
        {
            var root = new RootCommand("Serverless privacy-preserving ML platform client");
            root.Subcommands.Add(ModelCommands.Create());
            root.Subcommands.Add(Serverless.Client.Admin.AdminCommands.Create());
            root.Subcommands.Add(Serverless.Client.Agent.AgentCommands.Create());
            root.Subcommands.Add(Serverless.Client.Simulation.SimulateCommand.Create());
            root.Subcommands.Add(Serverless.Client.Partner.PartnerCommands.Create());
            root.Subcommands.Add(FraudCommands.Create());
            return root;
        }

        public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
        {
            if (ReferenceEquals(output, Console.Out) && ReferenceEquals(error, Console.Error)) return await Cli.RunAsync(CreateRoot(), args);
            InstallRouting();
            Route.Value = (output, error); // scoped to this call's async flow
            return await Cli.RunAsync(CreateRoot(), args);
        }

        private static void InstallRouting()
        {
            lock (InstallGate)
            {
                if (_installed) return;
                Console.SetOut(new RoutingWriter(Console.Out, static r => r.Out));
                Console.SetError(new RoutingWriter(Console.Error, static r => r.Error));
                _installed = true;
            }
        }

        private sealed class RoutingWriter(TextWriter fallback, Func<(TextWriter Out, TextWriter Error), TextWriter> pick) : TextWriter
        {
            private TextWriter Target => Route.Value is { } r ? pick(r) : fallback;
            public override Encoding Encoding => fallback.Encoding;
            public override void Write(char value) => Target.Write(value);
            public override void Write(string? value) => Target.Write(value);
            public override void Write(char[] buffer, int index, int count) => Target.Write(buffer, index, count);
            public override void Write(ReadOnlySpan<char> buffer) => Target.Write(buffer);
            public override void WriteLine() => Target.WriteLine();
            public override void WriteLine(string? value) => Target.WriteLine(value);
            public override void WriteLine(ReadOnlySpan<char> buffer) => Target.WriteLine(buffer);
            public override void Flush() => Target.Flush();
        }
    }
}
