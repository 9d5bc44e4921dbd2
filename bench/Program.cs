using System.Reflection;
using Serverless.Bench;

// dotnet run -c Release --project bench -- <suite> [--quick]
// Every suite prints its figures and ends with one line: RESULT <suite> key=value ...
var suites = typeof(IBenchSuite).Assembly.GetTypes()
    .Where(t => !t.IsAbstract && typeof(IBenchSuite).IsAssignableFrom(t))
    .Select(t => (IBenchSuite)Activator.CreateInstance(t)!)
    .ToDictionary(s => s.Name, StringComparer.OrdinalIgnoreCase);

if (args.Length == 0 || !suites.TryGetValue(args[0], out var suite))
{
    Console.Error.WriteLine($"usage: bench <suite> [--quick]   suites: {string.Join(", ", suites.Keys.Order())}");
    return 2;
}
var options = new BenchOptions(Quick: args.Contains("--quick"), Args: args[1..]);
return await suite.RunAsync(options);
