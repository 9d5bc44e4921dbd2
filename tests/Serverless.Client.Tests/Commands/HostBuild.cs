using System.Reflection;

namespace Serverless.Client.Tests.Commands;

/// <summary>Where this build put the local host and the function app (written into the test assembly by its project file).</summary>
internal static class HostBuild
{
    public static string AppDirectory => Metadata("FunctionAppDirectory");

    public static string LocalHostDll => Metadata("LocalHostDll");

    private static string Metadata(string key) =>
        typeof(HostBuild).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
}
