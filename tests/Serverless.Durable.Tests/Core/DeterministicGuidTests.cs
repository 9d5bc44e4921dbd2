using Serverless.Durable.Core;

namespace Serverless.Durable.Tests.Core;

public sealed class DeterministicGuidTests
{
    [Fact]
    public void Matches_the_RFC_9562_version_5_example()
    {
        // RFC 9562 Appendix A.4: UUIDv5 of "www.example.com" in the DNS namespace.
        Assert.Equal(new Guid("2ed6657d-e927-568b-95e1-2665a8aea6a2"), DeterministicGuid.Create(DeterministicGuid.DnsNamespace, "www.example.com"));
    }

    [Fact]
    public void Same_name_same_guid_different_name_different_guid()
    {
        var a = DeterministicGuid.Create(DeterministicGuid.OrchestrationNamespace, "i1_0");
        Assert.Equal(a, DeterministicGuid.Create(DeterministicGuid.OrchestrationNamespace, "i1_0"));
        Assert.NotEqual(a, DeterministicGuid.Create(DeterministicGuid.OrchestrationNamespace, "i1_1"));
    }
}
