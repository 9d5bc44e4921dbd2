using System.Net;
using System.Text;
using System.Text.Json;

namespace Serverless.Host.Tests.Durable;

/// <summary>
/// Durable Functions conformance, through the real worker: every case starts its orchestration with the
/// sample app's HTTP starter (a [DurableClient] binding, so the worker's DurableTaskClient calls the host's
/// sidecar) and follows it with the management URLs that CreateCheckStatusResponseAsync returned, as a
/// client of the async HTTP API would. Each case runs on every backend in <see cref="DurableHosts.Backends"/>.
/// </summary>
public sealed class DurableConformanceTests(DurableHosts hosts) : IClassFixture<DurableHosts>
{
    // A generous bound for a loaded machine: the tests wait for an outcome, they do not time it.
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(3);

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task An_activity_sequence_returns_each_activity_result_in_order(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "HelloSequence", null);

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        Assert.Equal(new[] { "Hello Tokyo!", "Hello Seattle!", "Hello London!" },
            status.GetProperty("output").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal("HelloSequence", status.GetProperty("name").GetString());
        Assert.Equal(started.Id, status.GetProperty("instanceId").GetString());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task A_fan_out_of_100_activities_fans_in_to_their_sum(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "FanOutFanIn", "100");

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        // Sum of i^2 for i in 0..99 = 99*100*199/6.
        Assert.Equal(328350, status.GetProperty("output").GetInt64());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task A_durable_timer_wakes_the_orchestration_no_earlier_than_its_due_time(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "DurableTimer", "2");

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        // DurableTask.AzureStorage delays a timer message with the queue's visibility timeout, which is whole
        // seconds, so it may wake the orchestration up to a second before the due time (seen: 186 ms); the
        // embedded store wakes it at or after.
        double lateMs = status.GetProperty("output").GetDouble();
        Assert.True(lateMs >= (backend == DurableHosts.Azurite ? -1000 : 0), $"woke {lateMs} ms after the due time");
        DateTime created = status.GetProperty("createdTime").GetDateTime();
        DateTime finished = status.GetProperty("lastUpdatedTime").GetDateTime();
        // Times are to the second; the timer is 2 s, so at least 1 s must show.
        Assert.True(finished - created >= TimeSpan.FromSeconds(1), $"created {created:O}, finished {finished:O}");
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task An_external_event_raised_over_http_reaches_the_waiting_orchestration(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Approval", "120");
        await WaitForStatusAsync(http, started, s => s.GetProperty("runtimeStatus").GetString() == "Running");

        using HttpResponseMessage raised = await http.PostAsync(started.SendEventUri("Approval"), Json("\"yes\""));

        Assert.Equal(HttpStatusCode.Accepted, raised.StatusCode);
        JsonElement status = await WaitForFinishAsync(http, started);
        Assert.Equal("approved:yes", status.GetProperty("output").GetString());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task An_external_event_that_never_comes_times_out(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Approval", "1");

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        Assert.Equal("timed out", status.GetProperty("output").GetString());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task A_sub_orchestration_returns_its_output_to_the_parent(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Parent", null);

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        Assert.Equal("child said Hello Tokyo! Hello Seattle! Hello London!", status.GetProperty("output").GetString());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task ContinueAsNew_restarts_the_same_instance_until_it_completes(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Counter", "0");

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        Assert.Equal(5, status.GetProperty("output").GetInt32());
        Assert.Equal(5, status.GetProperty("input").GetInt32());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task A_retry_policy_retries_a_failing_activity_until_it_succeeds(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        string key = "retry-" + backend + "-" + Guid.NewGuid().ToString("N");
        Started started = await StartAsync(http, "Retrying", JsonSerializer.Serialize(key));

        JsonElement status = await WaitForFinishAsync(http, started);

        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());
        Assert.Equal(3, status.GetProperty("output").GetInt32());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task Custom_status_is_visible_while_running_and_after_completion(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Waiting", null);

        JsonElement waiting = await WaitForStatusAsync(http, started,
            s => s.TryGetProperty("customStatus", out JsonElement c) && c.ValueKind == JsonValueKind.Object);
        Assert.Equal("waiting", waiting.GetProperty("customStatus").GetProperty("stage").GetString());
        Assert.Equal("Running", waiting.GetProperty("runtimeStatus").GetString());

        using HttpResponseMessage raised = await http.PostAsync(started.SendEventUri("Go"), Json("\"now\""));
        Assert.Equal(HttpStatusCode.Accepted, raised.StatusCode);
        JsonElement done = await WaitForFinishAsync(http, started);
        Assert.Equal("went now", done.GetProperty("output").GetString());
        Assert.Equal("done", done.GetProperty("customStatus").GetProperty("stage").GetString());
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task Terminate_ends_a_running_instance_and_purge_deletes_it(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "Waiting", null);
        await WaitForStatusAsync(http, started, s => s.GetProperty("runtimeStatus").GetString() == "Running");

        using HttpResponseMessage terminated = await http.PostAsync(started.TerminateUri("enough"), null);
        Assert.Equal(HttpStatusCode.Accepted, terminated.StatusCode);
        JsonElement status = await WaitForFinishAsync(http, started);
        Assert.Equal("Terminated", status.GetProperty("runtimeStatus").GetString());

        // A finished instance takes no more events or terminations: 410 Gone, as the Functions host answers.
        using HttpResponseMessage late = await http.PostAsync(started.SendEventUri("Go"), Json("\"late\""));
        Assert.Equal(HttpStatusCode.Gone, late.StatusCode);

        using HttpResponseMessage purged = await http.DeleteAsync(started.PurgeUri);
        Assert.Equal(HttpStatusCode.OK, purged.StatusCode);
        using JsonDocument purge = JsonDocument.Parse(await purged.Content.ReadAsStringAsync());
        Assert.Equal(1, purge.RootElement.GetProperty("instancesDeleted").GetInt32());
        using HttpResponseMessage gone = await http.GetAsync(started.StatusUri);
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Theory]
    [MemberData(nameof(DurableHosts.Backends), MemberType = typeof(DurableHosts))]
    public async Task The_async_http_api_answers_202_with_status_urls_that_need_the_system_key(string backend)
    {
        HttpClient http = (await hosts.GetAsync(backend)).Client;
        Started started = await StartAsync(http, "HelloSequence", null);

        // The Location header is the status query URL, on this host, under the webhook path, with the key.
        Assert.Equal(started.StatusUri, started.Location);
        var statusUri = new Uri(started.StatusUri);
        Assert.Equal(http.BaseAddress!.Authority, statusUri.Authority);
        Assert.Equal("/runtime/webhooks/durabletask/instances/" + started.Id, statusUri.AbsolutePath);
        Assert.Contains("code=", statusUri.Query, StringComparison.Ordinal);

        string withoutKey = started.StatusUri[..started.StatusUri.IndexOf('?')];
        using HttpResponseMessage anonymous = await http.GetAsync(withoutKey);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using HttpResponseMessage wrongKey = await http.GetAsync(withoutKey + "?code=wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.StatusCode);
        using HttpResponseMessage master = await http.GetAsync(withoutKey + "?code=" + DurableAppHost.MasterKey);
        Assert.True(master.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted, master.StatusCode.ToString());

        JsonElement status = await WaitForFinishAsync(http, started);
        Assert.Equal("Completed", status.GetProperty("runtimeStatus").GetString());

        // The worker's own DurableTaskClient (the sidecar) sees the same instance.
        using HttpResponseMessage viaClient = await http.GetAsync("api/durable-status/" + started.Id);
        Assert.Equal(HttpStatusCode.OK, viaClient.StatusCode);
        using JsonDocument client = JsonDocument.Parse(await viaClient.Content.ReadAsStringAsync());
        Assert.Equal("Completed", client.RootElement.GetProperty("status").GetString());

        using HttpResponseMessage unknown = await http.GetAsync(started.StatusUri.Replace(started.Id, "no-such-instance", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    internal sealed record Started(string Id, string StatusUri, string SendEventTemplate, string TerminateTemplate, string PurgeUri, string? Location)
    {
        public string SendEventUri(string eventName) => SendEventTemplate.Replace("{eventName}", eventName, StringComparison.Ordinal);
        public string TerminateUri(string reason) => TerminateTemplate.Replace("{text}", Uri.EscapeDataString(reason), StringComparison.Ordinal);
    }

    internal static async Task<Started> StartAsync(HttpClient http, string orchestration, string? jsonInput)
    {
        using HttpResponseMessage response = await http.PostAsync("api/durable/" + orchestration, jsonInput is null ? null : Json(jsonInput));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
        using JsonDocument payload = JsonDocument.Parse(body);
        // The names' case is the app serializer's (the worker's default JSON options give Id, StatusQueryGetUri).
        var urls = payload.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.OrdinalIgnoreCase);
        return new Started(
            urls["id"],
            urls["statusQueryGetUri"],
            urls["sendEventPostUri"],
            urls["terminatePostUri"],
            urls["purgeHistoryDeleteUri"],
            response.Headers.Location?.ToString());
    }

    /// <summary>Polls the status URL until the instance has finished (the API stops answering 202).</summary>
    internal static async Task<JsonElement> WaitForFinishAsync(HttpClient http, Started started)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            using HttpResponseMessage response = await http.GetAsync(started.StatusUri, timeout.Token);
            string body = await response.Content.ReadAsStringAsync(timeout.Token);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return JsonDocument.Parse(body).RootElement.Clone();
            }
            Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
            await Task.Delay(100, timeout.Token);
        }
    }

    internal static async Task<JsonElement> WaitForStatusAsync(HttpClient http, Started started, Func<JsonElement, bool> condition)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            using HttpResponseMessage response = await http.GetAsync(started.StatusUri, timeout.Token);
            string body = await response.Content.ReadAsStringAsync(timeout.Token);
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {body}");
            JsonElement status = JsonDocument.Parse(body).RootElement.Clone();
            if (condition(status))
            {
                return status;
            }
            await Task.Delay(100, timeout.Token);
        }
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");
}
