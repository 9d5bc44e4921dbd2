using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Serverless.Host.Tests.Http;

/// <summary>
/// HTTP triggers of a real worker on the ASP.NET Core integration (HttpRequest in, IResult out): the host
/// forwards each request to the worker's own Kestrel and relays its response.
/// </summary>
[Collection(AspNetSampleAppCollection.Name)]
public sealed class AspNetCoreIntegrationTests(AspNetSampleAppHost host)
{
    private HttpClient Client => host.Client;

    [Fact]
    public void The_host_loads_every_function_the_worker_indexed()
    {
        Assert.Equal(
            ["AdminOnly", "Classic", "Download", "Echo", "Secret", "Slow", "SlowState", "Status", "Throws", "Upload"],
            host.FunctionNames.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Route_parameters_query_header_and_body_reach_the_function_and_it_sees_the_callers_url()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/items/books/42?q=hello%20world&other=1")
        {
            Content = new StringContent("the body \u00e9", Encoding.UTF8, "text/plain"),
        };
        request.Headers.Add("x-sample", "abc");

        using HttpResponseMessage response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("books", Assert.Single(response.Headers.GetValues("x-sample-echo")));
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        JsonElement root = echo.RootElement;
        Assert.Equal("POST", root.GetProperty("method").GetString());
        Assert.Equal("books", root.GetProperty("category").GetString());
        Assert.Equal(42, root.GetProperty("id").GetInt32());
        Assert.Equal("hello world", root.GetProperty("query").GetString());
        Assert.Equal("abc", root.GetProperty("header").GetString());
        Assert.Equal("the body \u00e9", root.GetProperty("body").GetString());
        // X-Forwarded-Host/-Proto: the function sees the host's address, not the worker's Kestrel port.
        Assert.Equal(new Uri(host.HttpAddress, "api/items/books/42?q=hello%20world&other=1"), new Uri(root.GetProperty("url").GetString()!));
    }

    [Fact]
    public async Task A_callers_own_forwarded_client_certificate_header_never_reaches_the_worker()
    {
        // Only the front end may say which certificate the caller presented; over plain HTTP there is none.
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/items/books/1");
        request.Headers.TryAddWithoutValidation("X-ARR-ClientCert", Convert.ToBase64String(RandomNumberGenerator.GetBytes(64)));
        using HttpResponseMessage response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(JsonValueKind.Null, echo.RootElement.GetProperty("clientCertificate").ValueKind);
    }

    [Fact]
    public async Task A_get_without_query_header_or_body_binds_nulls_and_an_empty_body()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/items/tools/7");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("GET", echo.RootElement.GetProperty("method").GetString());
        Assert.Equal(7, echo.RootElement.GetProperty("id").GetInt32());
        Assert.Equal(JsonValueKind.Null, echo.RootElement.GetProperty("query").ValueKind);
        Assert.Equal(JsonValueKind.Null, echo.RootElement.GetProperty("header").ValueKind);
        Assert.Equal(string.Empty, echo.RootElement.GetProperty("body").GetString());
    }

    [Fact]
    public async Task A_caller_cannot_choose_the_invocation_id_the_worker_pairs_by()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/items/tools/8");
        request.Headers.Add("x-ms-invocation-id", Guid.Empty.ToString());

        using HttpResponseMessage response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(8, echo.RootElement.GetProperty("id").GetInt32());
    }

    [Fact]
    public async Task A_route_constraint_that_does_not_match_is_404_and_a_method_not_listed_is_405()
    {
        using HttpResponseMessage notFound = await Client.GetAsync("api/items/books/not-a-number");
        using HttpResponseMessage wrongMethod = await Client.DeleteAsync("api/items/books/1");

        Assert.Equal(HttpStatusCode.NotFound, notFound.StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.StatusCode);
        await HostProblemTests.AssertProblemAsync(notFound, 404);
        await HostProblemTests.AssertProblemAsync(wrongMethod, 405);
        Assert.Contains("POST", wrongMethod.Content.Headers.Allow);
    }

    [Fact]
    public async Task A_body_over_the_hosts_limit_is_413_before_the_function_runs()
    {
        (int status, string contentType) = await HostProblemTests.SendHeadOnlyAsync(host.HttpAddress, "api/upload", SampleAppHost.MaxRequestBodySize + 1);

        Assert.Equal(413, status);
        Assert.StartsWith("application/problem+json", contentType);
    }

    [Theory]
    [InlineData(201)]
    [InlineData(204)]
    [InlineData(404)]
    [InlineData(409)]
    [InlineData(503)]
    public async Task The_status_the_function_returns_reaches_the_caller(int code)
    {
        using HttpResponseMessage response = await Client.PutAsync($"api/status/{code}", content: null);

        Assert.Equal((HttpStatusCode)code, response.StatusCode);
    }

    [Fact]
    public async Task A_function_that_throws_is_a_500_with_nothing_of_the_exception_in_the_reply()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/throws");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.DoesNotContain("sample failure", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_HttpRequestData_function_runs_under_the_integration_too()
    {
        using HttpResponseMessage response = await Client.GetAsync("api/classic/bob");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("classic bob", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(null, HttpStatusCode.Unauthorized)]
    [InlineData("wrong-key", HttpStatusCode.Unauthorized)]
    [InlineData(SampleAppHost.EchoFunctionKey, HttpStatusCode.Unauthorized)] // another function's key
    [InlineData(SampleAppHost.SecretFunctionKey, HttpStatusCode.OK)]
    [InlineData(SampleAppHost.HostKey, HttpStatusCode.OK)]
    [InlineData(SampleAppHost.MasterKey, HttpStatusCode.OK)]
    public async Task A_function_level_trigger_takes_its_own_key_a_host_key_or_the_master_key(string? key, HttpStatusCode expected)
    {
        using HttpResponseMessage byQuery = await Client.GetAsync(key is null ? "api/secret" : $"api/secret?code={Uri.EscapeDataString(key)}");
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/secret");
        if (key is not null)
        {
            request.Headers.Add("x-functions-key", key);
        }
        using HttpResponseMessage byHeader = await Client.SendAsync(request);

        Assert.Equal(expected, byQuery.StatusCode);
        Assert.Equal(expected, byHeader.StatusCode);
        Assert.Equal(expected == HttpStatusCode.OK ? "secret ok" : string.Empty, await byHeader.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(SampleAppHost.AdminOnlyFunctionKey, HttpStatusCode.Unauthorized)]
    [InlineData(SampleAppHost.HostKey, HttpStatusCode.Unauthorized)]
    [InlineData(SampleAppHost.MasterKey, HttpStatusCode.OK)]
    public async Task An_admin_level_trigger_takes_only_the_master_key(string key, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/admin-only");
        request.Headers.Add("x-functions-key", key);

        using HttpResponseMessage response = await Client.SendAsync(request);

        Assert.Equal(expected, response.StatusCode);
    }

    [Fact]
    public async Task A_large_request_body_streams_to_the_function_whole()
    {
        // 24 MiB, sent chunked (no Content-Length): the host forwards it as it arrives.
        byte[] body = new byte[24 * 1024 * 1024];
        new Random(1234).NextBytes(body);
        using var content = new StreamContent(new ForwardOnlyStream(body));
        content.Headers.ContentType = new("application/octet-stream");

        using HttpResponseMessage response = await Client.PostAsync("api/upload", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using JsonDocument reply = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(body.Length, reply.RootElement.GetProperty("length").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(body)), reply.RootElement.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task A_large_response_the_function_writes_in_chunks_reaches_the_caller_whole()
    {
        const int size = 8 * 1024 * 1024 + 17;

        using HttpResponseMessage response = await Client.GetAsync($"api/download/{size}", HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType?.MediaType);
        byte[] received = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(size, received.Length);
        for (int i = 0; i < received.Length; i++)
        {
            if (received[i] != DownloadPattern(i))
            {
                Assert.Fail($"byte {i} is {received[i]}, expected {DownloadPattern(i)}");
            }
        }
    }

    [Fact]
    public async Task Concurrent_invocations_each_get_their_own_reply()
    {
        const int count = 32;
        var calls = Enumerable.Range(0, count).Select(async i =>
        {
            using HttpResponseMessage response = await Client.PostAsync($"api/items/c{i}/{i}", new StringContent($"body {i}"));
            using JsonDocument echo = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return (i, Category: echo.RootElement.GetProperty("category").GetString(), Id: echo.RootElement.GetProperty("id").GetInt32(), Body: echo.RootElement.GetProperty("body").GetString());
        });

        foreach (var (i, category, id, body) in await Task.WhenAll(calls))
        {
            Assert.Equal($"c{i}", category);
            Assert.Equal(i, id);
            Assert.Equal($"body {i}", body);
        }
    }

    [Fact]
    public async Task A_caller_that_goes_away_cancels_the_running_function()
    {
        string id = Guid.NewGuid().ToString("N");
        using var caller = new CancellationTokenSource();
        Task<HttpResponseMessage> slow = Client.GetAsync($"api/slow/{id}", caller.Token);

        await WaitForStateAsync(id, "started");
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slow);

        await WaitForStateAsync(id, "cancelled");
    }

    /// <summary>The sample's Download body (HttpFunctions.Pattern there; the app is not referenced here).</summary>
    private static byte DownloadPattern(long position) => (byte)((position * 31 + 7) % 251);

    /// <summary>Polls the sample's SlowState function until it reports <paramref name="expected"/> (bounded, not timed).</summary>
    private async Task WaitForStateAsync(string id, string expected)
    {
        string state = "unknown";
        for (int attempt = 0; attempt < 300 && state != expected; attempt++)
        {
            if (attempt > 0)
            {
                await Task.Delay(50);
            }
            state = await Client.GetStringAsync($"api/slow-state/{id}");
        }
        Assert.Equal(expected, state);
    }

    /// <summary>A body of unknown length (so the client sends it chunked), read in small pieces.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private int _position;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 16 * 1024), data.Length - _position);
            Array.Copy(data, _position, buffer, offset, n);
            _position += n;
            return n;
        }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
