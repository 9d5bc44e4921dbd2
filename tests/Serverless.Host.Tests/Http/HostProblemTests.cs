using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Serverless.Host.Tests.Http;

/// <summary>Errors the host answers itself are ProblemDetails; a function's own statuses pass unchanged (RpcHttp app).</summary>
[Collection(SampleAppCollection.Name)]
public sealed class HostProblemTests(SampleAppHost host)
{
    [Fact]
    public async Task An_unknown_path_is_a_404_problem_and_a_method_the_route_does_not_take_a_405_problem()
    {
        using HttpResponseMessage notFound = await host.Client.GetAsync("api/no-such-function");
        using HttpResponseMessage wrongMethod = await host.Client.GetAsync("api/status/201"); // Status takes PUT only

        await AssertProblemAsync(notFound, 404);
        await AssertProblemAsync(wrongMethod, 405);
        Assert.Contains("PUT", wrongMethod.Content.Headers.Allow);
    }

    [Fact]
    public async Task A_functions_own_404_has_no_problem_body_added()
    {
        using HttpResponseMessage response = await host.Client.PutAsync("api/status/404", content: null);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(string.Empty, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_body_over_the_hosts_limit_is_413_before_the_function_runs()
    {
        (int status, string contentType) = await SendHeadOnlyAsync(host.HttpAddress, "api/items/books/1", SampleAppHost.MaxRequestBodySize + 1);

        Assert.Equal(413, status);
        Assert.StartsWith("application/problem+json", contentType);
    }

    internal static async Task AssertProblemAsync(HttpResponseMessage response, int status)
    {
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using JsonDocument problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.RootElement.GetProperty("title").GetString()));
    }

    /// <summary>
    /// A POST that announces <paramref name="contentLength"/> bytes and sends none: the host must answer
    /// from the header alone. Returns the status and Content-Type of the reply.
    /// </summary>
    internal static async Task<(int Status, string ContentType)> SendHeadOnlyAsync(Uri server, string path, long contentLength)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port);
        NetworkStream stream = client.GetStream();
        string head = $"POST /{path} HTTP/1.1\r\nHost: {server.Authority}\r\nContent-Type: application/octet-stream\r\nContent-Length: {contentLength}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        using var reader = new StreamReader(stream, Encoding.ASCII);
        string statusLine = await reader.ReadLineAsync() ?? string.Empty;
        string contentType = string.Empty;
        for (string? line = await reader.ReadLineAsync(); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync())
        {
            if (line.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase))
            {
                contentType = line["Content-Type:".Length..].Trim();
            }
        }
        string[] parts = statusLine.Split(' ');
        return (parts.Length > 1 && int.TryParse(parts[1], out int status) ? status : 0, contentType);
    }
}
