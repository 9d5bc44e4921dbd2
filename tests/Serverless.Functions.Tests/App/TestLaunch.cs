using System.Runtime.CompilerServices;

namespace Serverless.Functions.Tests.App;

/// <summary>
/// The simulation and the CLI tests start the local host as a process: point them at this build's host and
/// app (built before this project), so they never build the repository's Release outputs themselves.
/// </summary>
internal static class TestLaunch
{
    [ModuleInitializer]
    internal static void UseThisBuild()
    {
        if (Environment.GetEnvironmentVariable("SERVERLESS_HOST_DLL") is not { Length: > 0 })
            Environment.SetEnvironmentVariable("SERVERLESS_HOST_DLL", FunctionAppHost.LocalHostDll);
        if (Environment.GetEnvironmentVariable("SERVERLESS_FUNCTIONS_APP") is not { Length: > 0 })
            Environment.SetEnvironmentVariable("SERVERLESS_FUNCTIONS_APP", FunctionAppHost.AppDirectory);
    }
}
