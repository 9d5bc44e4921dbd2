using System.Net;

namespace Serverless.Host.Tests.Http;

/// <summary>authLevel "function" as the Functions host enforces it, on the real sample app.</summary>
[Collection(SampleAppCollection.Name)]
public sealed class FunctionKeyTests(SampleAppHost host)
{
    [Fact]
    public async Task Without_a_key_a_function_level_trigger_is_401_and_does_not_run()
    {
        using HttpResponseMessage response = await host.Client.GetAsync("api/secret");

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(string.Empty, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("wrong-key")]
    [InlineData(SampleAppHost.EchoFunctionKey)] // another function's key
    [InlineData(SampleAppHost.SecretFunctionKey + "x")]
    public async Task A_key_that_is_not_this_functions_nor_a_host_key_is_401(string key)
    {
        using HttpResponseMessage byQuery = await host.Client.GetAsync($"api/secret?code={Uri.EscapeDataString(key)}");
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/secret");
        request.Headers.Add("x-functions-key", key);
        using HttpResponseMessage byHeader = await host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, byQuery.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, byHeader.StatusCode);
    }

    [Theory]
    [InlineData(SampleAppHost.SecretFunctionKey)]
    [InlineData(SampleAppHost.HostKey)]
    [InlineData(SampleAppHost.MasterKey)]
    public async Task The_functions_own_key_a_host_key_or_the_master_key_is_accepted_in_query_or_header(string key)
    {
        using HttpResponseMessage byQuery = await host.Client.GetAsync($"api/secret?code={Uri.EscapeDataString(key)}");
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/secret");
        request.Headers.Add("x-functions-key", key);
        using HttpResponseMessage byHeader = await host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, byQuery.StatusCode);
        Assert.Equal("secret ok", await byQuery.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, byHeader.StatusCode);
    }

    [Fact]
    public async Task An_anonymous_trigger_ignores_a_wrong_key()
    {
        using HttpResponseMessage response = await host.Client.GetAsync("api/items/a/1?code=wrong");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
