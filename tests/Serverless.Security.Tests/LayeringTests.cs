using Serverless.Security.Keys;

namespace Serverless.Security.Tests;

/// <summary>The governance library stands without a host: what a client or a tool loads brings neither ASP.NET Core nor the stores.</summary>
public sealed class LayeringTests
{
    [Fact]
    public void The_governance_library_references_no_ASP_NET_Core_and_no_storage_assembly()
    {
        var referenced = typeof(LocalKeyring).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToList();
        Assert.DoesNotContain(referenced, n => n.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal));
        Assert.DoesNotContain(referenced, n => n is "Serverless.Storage" or "Azure.Identity" or "Azure.Storage.Blobs");
        // The host's wiring is the other assembly, and it builds on this one.
        var hosting = typeof(Serverless.Security.Hosting.SecurityHosting).Assembly;
        Assert.Contains(hosting.GetReferencedAssemblies(), a => a.Name == typeof(LocalKeyring).Assembly.GetName().Name);
    }
}
