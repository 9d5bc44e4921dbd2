using System.CommandLine;
using Serverless.Client.Commands;

// serverless-client: command-line client of the platform. One file per command group in Commands/.
var root = new RootCommand("Serverless privacy-preserving ML platform client");
root.Subcommands.Add(ModelCommands.Create());
return await Cli.RunAsync(root, args);
