using System.Net.Http.Headers;
using System.Net.Http.Json;
using Serverless.Federation.Rounds;

namespace Serverless.Client.Agent;

/// <summary>A request the server refused (ProblemDetails), or an answer that is not what the protocol says.</summary>
internal sealed class RoundsApiException(HttpStatusCode? status, string message) : Exception(message)
{
    public HttpStatusCode? Status { get; } = status;

    /// <summary>Worth retrying: the server is busy or failing, not refusing.</summary>
    public bool Transient => Status is null or HttpStatusCode.TooManyRequests or >= HttpStatusCode.InternalServerError;
}

/// <summary>A JSON body already serialized (sent as these bytes).</summary>
internal sealed record RawJson(byte[] Bytes);

/// <summary>
/// The client half of the round protocol (federation/Serverless.Federation/Rounds/Protocol.cs, docs/rounds.md):
/// typed calls over one <see cref="HttpClient"/>, bodies in <see cref="RoundJson.Options"/>, the bearer token
/// from enrollment on every call after it. Non-success answers become <see cref="RoundsApiException"/> with
/// the ProblemDetails' title and detail.
/// </summary>
internal sealed class RoundsClient(HttpClient http)
{
    public HttpClient Http { get; } = http ?? throw new ArgumentNullException(nameof(http));

    private long _bodyBytesSent;
    private readonly Lock _pace = new();
    private double _pollTokens = PollBurst;
    private long _tokensAt = System.Diagnostics.Stopwatch.GetTimestamp();
    private long _blockedUntil;

    /// <summary>
    /// Polls (GETs) this client may make per second, across every federation it serves. The host allows 600 requests a
    /// minute per caller in total (docs/rounds.md, "Rate limits") in fixed one-minute windows; an agent that polled three
    /// federations every 150 ms made about 1,200 and was locked out with 429 for the rest of the window, so its phase
    /// messages missed their deadlines (the Unmasking failure of issue 14). Four a second, with bursts of eight, keeps
    /// polls below half the limit and leaves the rest for phase messages.
    /// </summary>
    public double PollsPerSecond { get; init; } = 4;

    private const double PollBurst = 8;

    /// <summary>JSON body bytes sent so far (what the protocol costs on the wire, before HTTP framing and TLS).</summary>
    public long BodyBytesSent => Interlocked.Read(ref _bodyBytesSent);

    /// <summary>Bearer token sent on every request (null = anonymous).</summary>
    public string? Token { get; set; }

    public Task<EnrollmentChallenge> ChallengeAsync(string federation, CancellationToken ct) =>
        SendAsync<EnrollmentChallenge>(HttpMethod.Post, RoundRoutes.Challenge(federation), null, ct)!;

    public Task<EnrollmentResponse> EnrollAsync(string federation, EnrollmentRequest request, CancellationToken ct) =>
        SendAsync<EnrollmentResponse>(HttpMethod.Post, RoundRoutes.Enroll(federation), request, ct)!;

    public Task<FederationView> FederationAsync(string federation, CancellationToken ct) =>
        SendAsync<FederationView>(HttpMethod.Get, RoundRoutes.Federation(federation), null, ct)!;

    /// <summary>The running round, or null when none is running (404).</summary>
    public async Task<RoundStatus?> ActiveRoundAsync(string federation, CancellationToken ct)
    {
        try
        {
            return await SendAsync<RoundStatus>(HttpMethod.Get, RoundRoutes.ActiveRound(federation), null, ct);
        }
        catch (RoundsApiException e) when (e.Status == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    public Task<RoundStatus> RoundAsync(string federation, int round, CancellationToken ct) =>
        SendAsync<RoundStatus>(HttpMethod.Get, RoundRoutes.Round(federation, round), null, ct)!;

    public Task<ClientTask> TaskAsync(string federation, int round, CancellationToken ct) =>
        SendAsync<ClientTask>(HttpMethod.Get, RoundRoutes.Task(federation, round), null, ct)!;

    public Task<RoundModel> ModelAsync(string federation, int round, CancellationToken ct) =>
        SendAsync<RoundModel>(HttpMethod.Get, RoundRoutes.Model(federation, round), null, ct)!;

    /// <summary>Posts one phase message; the receipt says whether it was new or an identical retry.</summary>
    public Task<PhaseReceipt> PostPhaseAsync<T>(string path, T body, CancellationToken ct) where T : class =>
        SendAsync<PhaseReceipt>(HttpMethod.Post, path, body, ct)!;

    /// <summary>Sends a request with a JSON body (or none) and reads a JSON answer.</summary>
    public async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (Token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (body is not null || method == HttpMethod.Post)
        {
            var json = body switch
            {
                null => "{}"u8.ToArray(),
                RawJson raw => raw.Bytes,
                _ => JsonSerializer.SerializeToUtf8Bytes(body, body.GetType(), RoundJson.Options),
            };
            var (bytes, compressed) = BodyCompression.Compress(json);
            Interlocked.Add(ref _bodyBytesSent, bytes.Length);
            request.Content = new ByteArrayContent(bytes);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            if (compressed) request.Content.Headers.ContentEncoding.Add(BodyCompression.Encoding);
        }
        await PaceAsync(method == HttpMethod.Get, ct);
        HttpResponseMessage response;
        try
        {
            response = await Http.SendAsync(request, ct);
        }
        catch (HttpRequestException e)
        {
            throw new RoundsApiException(null, $"{method} {path}: {e.Message}");
        }
        using (response)
        {
            // A 429 here outlasted the client's own retries: hold every call until its Retry-After, not just this one.
            if (response.StatusCode == HttpStatusCode.TooManyRequests) HonourRetryAfter(response);
            if (!response.IsSuccessStatusCode) throw await FailureAsync(method, path, response, ct);
            try
            {
                return await response.Content.ReadFromJsonAsync<T>(RoundJson.Options, ct)
                       ?? throw new RoundsApiException(response.StatusCode, $"{method} {path}: empty answer");
            }
            catch (JsonException e)
            {
                throw new RoundsApiException(response.StatusCode, $"{method} {path}: the answer is not a valid {typeof(T).Name}: {e.Message}");
            }
        }
    }

    /// <summary>Waits out a Retry-After the server sent, and (for a poll) until the poll budget has a token.</summary>
    private async Task PaceAsync(bool poll, CancellationToken ct)
    {
        while (true)
        {
            TimeSpan wait;
            lock (_pace)
            {
                var now = System.Diagnostics.Stopwatch.GetTimestamp();
                if (now < _blockedUntil) wait = System.Diagnostics.Stopwatch.GetElapsedTime(now, _blockedUntil);
                else if (!poll) return;
                else
                {
                    _pollTokens = Math.Min(PollBurst, _pollTokens + System.Diagnostics.Stopwatch.GetElapsedTime(_tokensAt, now).TotalSeconds * PollsPerSecond);
                    _tokensAt = now;
                    if (_pollTokens >= 1) { _pollTokens -= 1; return; }
                    wait = TimeSpan.FromSeconds((1 - _pollTokens) / PollsPerSecond);
                }
            }
            await Task.Delay(wait, ct).ConfigureAwait(false);
        }
    }

    private void HonourRetryAfter(HttpResponseMessage response)
    {
        var delay = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
        if (delay > TimeSpan.FromMinutes(2)) delay = TimeSpan.FromMinutes(2);
        lock (_pace) _blockedUntil = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
    }

    private static async Task<RoundsApiException> FailureAsync(HttpMethod method, string path, HttpResponseMessage response, CancellationToken ct)
    {
        string text;
        try
        {
            text = await response.Content.ReadAsStringAsync(ct);
        }
        catch (HttpRequestException)
        {
            text = "";
        }
        string? title = null, detail = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (doc.RootElement.TryGetProperty("title", out var t)) title = t.GetString();
                if (doc.RootElement.TryGetProperty("detail", out var d)) detail = d.GetString();
            }
        }
        catch (JsonException)
        {
        }
        var why = string.Join(": ", new[] { title, detail }.Where(s => !string.IsNullOrWhiteSpace(s)));
        if (why.Length == 0) why = text.Length > 200 ? text[..200] : text;
        return new RoundsApiException(response.StatusCode, $"{method} {path}: {(int)response.StatusCode} {Serverless.Client.Commands.Cli.OneLine(why)}");
    }
}
