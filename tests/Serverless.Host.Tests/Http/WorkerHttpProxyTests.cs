using Serverless.Host.Http;

namespace Serverless.Host.Tests.Http;

/// <summary>The HttpUri capability decides the integration, and only a loopback http URI is taken.</summary>
public sealed class WorkerHttpProxyTests
{
    [Fact]
    public void Without_the_capability_the_worker_gets_RpcHttp()
    {
        Assert.Null(WorkerHttpProxy.FromCapabilities(new Dictionary<string, string> { ["RpcHttpBodyOnly"] = "true" }));
        Assert.Null(WorkerHttpProxy.FromCapabilities(new Dictionary<string, string> { ["HttpUri"] = "" }));
    }

    [Theory]
    [InlineData("http://localhost:5123/")]
    [InlineData("http://127.0.0.1:5123")]
    [InlineData("http://[::1]:5123/")]
    public void A_loopback_http_uri_is_the_workers_server(string uri)
    {
        using WorkerHttpProxy? proxy = WorkerHttpProxy.FromCapabilities(new Dictionary<string, string> { ["HttpUri"] = uri });

        Assert.NotNull(proxy);
        Assert.Equal(new Uri(uri), proxy.Worker);
    }

    [Theory]
    [InlineData("http://10.0.0.5:5123/")]
    [InlineData("http://example.org/")]
    [InlineData("https://localhost:5123/")]
    [InlineData("http://localhost:5123/elsewhere/")]
    [InlineData("http://user:pw@localhost:5123/")]
    [InlineData("not a uri")]
    public void Any_other_uri_stops_the_start(string uri)
    {
        var e = Assert.Throws<HostStartException>(() => WorkerHttpProxy.FromCapabilities(new Dictionary<string, string> { ["HttpUri"] = uri }));
        Assert.Contains("HttpUri", e.Message);
    }
}
