using System.Net;
using Serverless.Client.Commands;

namespace Serverless.Client.Tests.Commands;

/// <summary>The one way every client makes its HttpClient: what is retried, for which method, and that a refusal is not.</summary>
public sealed class ClientHttpTests
{
    /// <summary>Answers from a script, one per attempt, and counts the attempts.</summary>
    private sealed class ScriptedServer(params Func<HttpResponseMessage>[] answers) : HttpMessageHandler
    {
        public int Attempts;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var index = Interlocked.Increment(ref Attempts) - 1;
            return Task.FromResult(answers[Math.Min(index, answers.Length - 1)]());
        }
    }

    private static HttpResponseMessage Answer(HttpStatusCode status, int? retryAfterSeconds = null)
    {
        var response = new HttpResponseMessage(status);
        if (retryAfterSeconds is { } s) response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(s));
        return response;
    }

    private static HttpClient Client(ScriptedServer server) =>
        ClientHttp.Create("test", new Uri("http://127.0.0.1:9/"), () => server, TimeSpan.FromMinutes(1));

    [Fact]
    public async Task A_429_with_Retry_After_is_retried_for_a_POST_until_the_server_answers()
    {
        var server = new ScriptedServer(() => Answer(HttpStatusCode.TooManyRequests, 0), () => Answer(HttpStatusCode.TooManyRequests, 0), () => Answer(HttpStatusCode.OK));
        using var http = Client(server);
        using var response = await http.PostAsync("api/x", new StringContent("{}"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, server.Attempts);
    }

    [Fact]
    public async Task A_500_is_retried_for_a_GET_but_not_for_a_POST()
    {
        var get = new ScriptedServer(() => Answer(HttpStatusCode.InternalServerError), () => Answer(HttpStatusCode.OK));
        using (var http = Client(get))
        using (var response = await http.GetAsync("api/x"))
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, get.Attempts);

        var post = new ScriptedServer(() => Answer(HttpStatusCode.InternalServerError), () => Answer(HttpStatusCode.OK));
        using (var http = Client(post))
        using (var response = await http.PostAsync("api/x", new StringContent("{}")))
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal(1, post.Attempts);
    }

    [Theory]
    [InlineData(HttpStatusCode.BadRequest)]
    [InlineData(HttpStatusCode.Unauthorized)]
    [InlineData(HttpStatusCode.Forbidden)]
    [InlineData(HttpStatusCode.Conflict)]
    [InlineData(HttpStatusCode.RequestEntityTooLarge)]
    public async Task A_refusal_is_returned_at_once(HttpStatusCode status)
    {
        var server = new ScriptedServer(() => Answer(status), () => Answer(HttpStatusCode.OK));
        using var http = Client(server);
        using var response = await http.GetAsync("api/x");
        Assert.Equal(status, response.StatusCode);
        Assert.Equal(1, server.Attempts);
    }

    [Fact]
    public async Task The_retries_stop_after_the_budget_and_the_last_answer_is_returned()
    {
        var server = new ScriptedServer(() => Answer(HttpStatusCode.ServiceUnavailable, 0));
        using var http = Client(server);
        using var response = await http.GetAsync("api/x");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(ClientHttp.MaxRetries + 1, server.Attempts);
    }

    [Fact]
    public void The_method_rule_covers_every_transient_status()
    {
        Assert.True(ClientHttp.IsRetryable(HttpStatusCode.ServiceUnavailable, HttpMethod.Put));
        Assert.True(ClientHttp.IsRetryable(HttpStatusCode.BadGateway, HttpMethod.Head));
        Assert.False(ClientHttp.IsRetryable(HttpStatusCode.GatewayTimeout, HttpMethod.Delete));
        Assert.True(ClientHttp.IsRetryable(null, HttpMethod.Post, connectionFailed: true));
        Assert.False(ClientHttp.IsRetryable(null, HttpMethod.Get));
        Assert.False(ClientHttp.IsRetryable(HttpStatusCode.NotFound, HttpMethod.Get));
    }
}
