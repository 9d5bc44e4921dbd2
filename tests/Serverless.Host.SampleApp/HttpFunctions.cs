using System.Net;
using System.Text.Json;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Http;

namespace Serverless.Host.SampleApp;

/// <summary>
/// HTTP-trigger cases for the local host's conformance tests: each function reflects what it was given
/// (route values, query, a header, the body) so a test can assert that the host passed it through.
/// </summary>
public sealed class HttpFunctions
{
    /// <summary>Route parameters (one constrained to int), the query string, a header and the method.</summary>
    [Function("Echo")]
    public static async Task<HttpResponseData> Echo(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "post", Route = "items/{category}/{id:int}")] HttpRequestData request,
        string category,
        int id)
    {
        string body = await new StreamReader(request.Body).ReadToEndAsync();
        var query = System.Web.HttpUtility.ParseQueryString(request.Url.Query);
        var reply = new EchoReply(
            request.Method,
            category,
            id,
            query["q"],
            request.Headers.TryGetValues("x-sample", out var values) ? string.Join(",", values) : null,
            body);
        HttpResponseData response = request.CreateResponse(HttpStatusCode.OK);
        response.Headers.Add("x-sample-echo", category);
        response.Headers.Add("Content-Type", "application/json");
        await response.WriteStringAsync(JsonSerializer.Serialize(reply));
        return response;
    }

    /// <summary>The status code comes from the route: 201, 404, 409 and so on reach the caller unchanged.</summary>
    [Function("Status")]
    public static HttpResponseData Status(
        [HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = "status/{code:int}")] HttpRequestData request,
        int code) =>
        request.CreateResponse((HttpStatusCode)code);

    /// <summary>Needs a function key (query <c>code</c> or header <c>x-functions-key</c>).</summary>
    [Function("Secret")]
    public static async Task<HttpResponseData> Secret(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "secret")] HttpRequestData request)
    {
        HttpResponseData response = request.CreateResponse(HttpStatusCode.OK);
        await response.WriteStringAsync("secret ok");
        return response;
    }

    /// <summary>No route: the function name is the route (api/Default), any method.</summary>
    [Function("Default")]
    public static async Task<HttpResponseData> Default(
        [HttpTrigger(AuthorizationLevel.Anonymous)] HttpRequestData request)
    {
        HttpResponseData response = request.CreateResponse(HttpStatusCode.OK);
        await response.WriteStringAsync(request.Method);
        return response;
    }

    /// <summary>An exception in the function is a 500 from the host, with nothing of the exception in the reply.</summary>
    [Function("Throws")]
    public static HttpResponseData Throws(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "throws")] HttpRequestData request) =>
        throw new InvalidOperationException("sample failure");

    /// <summary>
    /// Never answers: it creates the file named by the <c>marker</c> query parameter and waits until the
    /// worker is killed, so a test can cut an HTTP invocation mid-flight.
    /// </summary>
    [Function("Hang")]
    public static async Task<HttpResponseData> Hang(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "hang")] HttpRequestData request, FunctionContext context)
    {
        string marker = System.Web.HttpUtility.ParseQueryString(request.Url.Query)["marker"] ?? throw new ArgumentException("marker is required");
        await File.WriteAllTextAsync(marker, "started");
        await Task.Delay(Timeout.Infinite, context.CancellationToken);
        return request.CreateResponse(HttpStatusCode.OK);
    }

    public sealed record EchoReply(string Method, string Category, int Id, string? Query, string? Header, string Body);
}
