using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Serverless.Fraud.Data;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Functions.Fraud;
using Serverless.Functions.Fraud.Services;
using Serverless.Functions.Inference;
using Serverless.Functions.Tests.App;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;
using Serverless.Security.Audit;
using Serverless.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Serverless.Functions.Tests.Fraud;

/// <summary>Two trained versions and the streams they are measured on, trained once for the class.</summary>
public sealed class FraudScenario
{
    public const int K = 8;

    public FraudScenario()
    {
        var train = StreamGenerator.Generate(new StreamOptions { Banks = 2, CardsPerBank = 300, Days = 3, Seed = 21, FraudCardFraction = 0.15 }).Transactions;
        using var tokenizer = new CardTokenizer(CardTokenizer.NewKey());
        var data = FraudDatasets.Build(train, tokenizer, K, keepLegitimate: 0.3);
        var options = FraudModels.DefaultTraining() with { Epochs = 6 };
        V1 = FraudModels.Train("v1", FraudModels.Sequence(K), data, options);
        V2 = FraudModels.Train("v2", FraudModels.Sequence(K), data, FraudModels.DefaultTraining(seed: 2) with { Epochs = 6 });
        // The evaluation set and the live stream are other cards of another seed.
        var other = StreamGenerator.Generate(new StreamOptions { Banks = 2, CardsPerBank = 150, Days = 3, Seed = 33, FraudCardFraction = 0.15 }).Transactions;
        Evaluation = other.Where((_, i) => i % 2 == 0).Take(3000).ToList();
        Live = StreamGenerator.Generate(new StreamOptions { Banks = 1, CardsPerBank = 120, Days = 2, Seed = 44, FraudCardFraction = 0.2 }).Transactions.Take(1200).ToList();
    }

    public FraudModel V1 { get; }
    public FraudModel V2 { get; }
    public IReadOnlyList<Transaction> Evaluation { get; }
    public IReadOnlyList<Transaction> Live { get; }

    public static byte[] Onnx(FraudModel m) => OnnxExporter.Export(m.Config, m.Parameters);

    public static object Submission(Transaction t, bool label = false, string? cardNumber = null) => new
    {
        transactionId = t.TransactionId, cardNumber = cardNumber ?? t.CardNumber, timestampMs = t.TimestampMs, amount = t.Amount, merchantId = t.MerchantId,
        category = t.Category.ToString(), online = t.Online, kind = t.Kind.ToString(), direction = t.Direction, locationX = t.LocationX, locationY = t.LocationY,
        deviceId = t.DeviceId, utcOffsetHours = t.UtcOffsetHours, cardAgeDays = t.CardAgeDays, isCredit = t.IsCredit,
        fraud = label ? (t.IsFraud ? 1 : 0) : (int?)null,
    };
}

/// <summary>The fraud stream through the real app under the local host: intake, queue-triggered scoring, alerts, the gate and drift.</summary>
public sealed class FraudStreamTests(FraudScenario scenario) : IClassFixture<FraudScenario>
{
    [Fact]
    public async Task A_bank_stream_is_scored_alerted_explained_and_acknowledged_and_no_card_number_is_stored_anywhere()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("fraud-stream-").FullName;
        try
        {
            await RunStreamAsync(dataDirectory);
            // Restarted on its data directory, the instance keeps its drift window (stored under the deployment's revision).
            await using (var again = await FunctionAppHost.StartAsync(new FunctionAppHostOptions { DataDirectory = dataDirectory }))
            {
                using var r = await SendAsync(again, HttpMethod.Get, "api/fraud/drift", await again.TokenAsync("ops-1", "operator", null));
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
                Assert.Equal(scenario.Live.Count - 2, body.RootElement.GetProperty("observations").GetInt64());
            }
            // No card number in any file the app wrote: blobs, queues, the audit log, the card history (WAL included).
            var pans = scenario.Live.Select(t => t.CardNumber).Concat(scenario.Evaluation.Select(t => t.CardNumber)).Distinct().ToList();
            var files = Directory.EnumerateFiles(dataDirectory, "*", SearchOption.AllDirectories).ToList();
            Assert.Contains(files, f => f.EndsWith("card-history.db", StringComparison.Ordinal));
            foreach (var file in files)
            {
                var text = Encoding.Latin1.GetString(await File.ReadAllBytesAsync(file));
                foreach (var pan in pans) Assert.False(text.Contains(pan, StringComparison.Ordinal), $"a card number is in {Path.GetRelativePath(dataDirectory, file)}");
            }
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    private async Task RunStreamAsync(string dataDirectory)
    {
        await using var host = await FunctionAppHost.StartAsync(new FunctionAppHostOptions { DataDirectory = dataDirectory });
        var op = await host.TokenAsync("ops-1", "operator", null);
        var bankA = await host.TokenAsync("gw-a", "bank", "bank-a");
        var bankB = await host.TokenAsync("gw-b", "bank", "bank-b");

        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/models/v1", op, new ByteArrayContent(FraudScenario.Onnx(scenario.V1))))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/models/v1", op, new ByteArrayContent(FraudScenario.Onnx(scenario.V1))))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);   // the same bytes again
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/models/v1", op, new ByteArrayContent(FraudScenario.Onnx(scenario.V2))))
            Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/models/v1/promote", op, Json(new { threshold = 0.5 })))
            await AssertProblemAsync(r, HttpStatusCode.Conflict, FraudRefusalCodes.NoEvaluationSet);

        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/evaluation", op, Json(new { transactions = scenario.Evaluation.Select(t => FraudScenario.Submission(t, label: true)) })))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        const double threshold = 0.5;
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/models/v1/promote", op, Json(new { threshold })))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.True(body.RootElement.GetProperty("gate").GetProperty("passed").GetBoolean());
            Assert.True(body.RootElement.GetProperty("gate").GetProperty("candidateAuroc").GetDouble() >= 0.7);
        }

        // Two malformed transactions among the live ones: a card number that fails its Luhn check, and a negative amount.
        var live = scenario.Live;
        var submissions = live.Select(t => FraudScenario.Submission(t)).ToList();
        var badLuhn = live[10].CardNumber[..^1] + (char)('0' + (live[10].CardNumber[^1] - '0' + 1) % 10);
        submissions[10] = FraudScenario.Submission(live[10], cardNumber: badLuhn);
        submissions[20] = FraudScenario.Submission(live[20] with { Amount = -5 });
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/bank-a/transactions", bankA, Json(new { transactions = submissions })))
        {
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
            var receipt = JsonSerializer.Deserialize<IntakeReceipt>(await r.Content.ReadAsStringAsync(), FraudJson.Options)!;
            Assert.Equal(live.Count - 2, receipt.Accepted);
            Assert.Equal([10, 20], receipt.Refused.Select(x => x.Index));
            Assert.Contains("Luhn", receipt.Refused[0].Reason, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("amount", receipt.Refused[1].Reason, StringComparison.Ordinal);
        }
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/bank-b/transactions", bankA, Json(new { transactions = submissions.Take(1) })))
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);

        // What the served model must alert on: the same events through a local scorer of the same version.
        var expected = ExpectedAlerts(live.Where((_, i) => i is not 10 and not 20).ToList(), threshold);
        Assert.NotEmpty(expected);

        var alerts = new List<AlertDelivery>();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (alerts.Count < expected.Count && DateTime.UtcNow < deadline)
        {
            using var r = await SendAsync(host, HttpMethod.Get, "api/fraud/bank-a/alerts?max=32", bankA);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            var read = body.RootElement.GetProperty("alerts").Deserialize<List<AlertDelivery>>(FraudJson.Options)!;
            alerts.AddRange(read);
            if (read.Count > 0)
            {
                using var ack = await SendAsync(host, HttpMethod.Post, "api/fraud/bank-a/alerts/ack", bankA, Json(new { ackIds = read.Select(a => a.AckId) }));
                using var acked = JsonDocument.Parse(await ack.Content.ReadAsStringAsync());
                Assert.Equal(read.Count, acked.RootElement.GetProperty("acknowledged").GetInt32());
            }
            else await Task.Delay(200);
        }
        Assert.Equal(expected.Order(StringComparer.Ordinal), alerts.Select(a => a.Alert.TransactionId).Order(StringComparer.Ordinal));
        Assert.All(alerts, a =>
        {
            Assert.Equal("v1", a.Alert.ModelVersion);
            Assert.True(a.Alert.Score >= threshold);
            Assert.Equal(21, a.Alert.Explanation.Features.Count);
            Assert.Equal(FraudScenario.K, a.Alert.Explanation.Steps.Count);
        });
        using (var r = await SendAsync(host, HttpMethod.Get, "api/fraud/bank-a/alerts", bankB))
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Get, "api/fraud/bank-a/alerts", bankA))
        {
            using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.Equal(0, body.RootElement.GetProperty("alerts").GetArrayLength());   // all acknowledged
        }

        // The refused ones are on the poison queue with their reasons, without their card numbers.
        var queues = host.Services.GetRequiredService<IQueueStore>();
        var poisoned = await queues.GetAsync(PoisonMessage.PoisonQueueName(FraudStore.TransactionsQueue), 32, TimeSpan.FromMinutes(1));
        var poison = JsonSerializer.Deserialize<PoisonMessage>(Assert.Single(poisoned).Body.Span, JsonSerializerOptions.Web)!;
        Assert.StartsWith(FraudRefusalCodes.MalformedTransaction, poison.LastError, StringComparison.Ordinal);
        Assert.Contains("#10: ", poison.LastError, StringComparison.Ordinal);
        Assert.Contains("#20: ", poison.LastError, StringComparison.Ordinal);
        var poisonText = Encoding.UTF8.GetString(poison.Body);
        Assert.Contains(live[20].TransactionId, poisonText, StringComparison.Ordinal);
        Assert.DoesNotContain(live[20].CardNumber, poisonText, StringComparison.Ordinal);
        Assert.DoesNotContain(badLuhn, poisonText, StringComparison.Ordinal);

        // The drift monitor saw the stream; the compliance report has its line.
        using (var r = await SendAsync(host, HttpMethod.Get, "api/fraud/drift", op))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.Equal(live.Count - 2, body.RootElement.GetProperty("observations").GetInt64());
        }
        var auditor = await host.TokenAsync("aud-1", "auditor", null);
        using (var r = await SendAsync(host, HttpMethod.Get, "api/compliance", auditor))
            Assert.Contains("fraud scoring inputs within the drift bound", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.DoesNotContain(badLuhn[..12], poisonText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_gate_refuses_a_worse_model_and_a_rollback_serves_the_former_champion_both_audited()
    {
        await using var host = await FunctionAppHost.StartAsync();
        var op = await host.TokenAsync("ops-2", "operator", null);
        var untrained = new FraudModel("v0", FraudModels.Sequence(FraudScenario.K), new CnnLstm(FraudModels.Sequence(FraudScenario.K)).InitializeParameters(5));
        foreach (var m in new[] { scenario.V1, scenario.V2, untrained })
            using (var r = await SendAsync(host, HttpMethod.Put, $"api/fraud/models/{m.Version}", op, new ByteArrayContent(FraudScenario.Onnx(m))))
                Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/models/bad", op, new ByteArrayContent("not an onnx file"u8.ToArray())))
            await AssertProblemAsync(r, HttpStatusCode.BadRequest, FraudRefusalCodes.BadRequest);
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/evaluation", op, Json(new { transactions = scenario.Evaluation.Select(t => FraudScenario.Submission(t, label: true)) })))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);

        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/models/v0/promote", op, Json(new { })))
            await AssertProblemAsync(r, HttpStatusCode.Conflict, FraudRefusalCodes.GateFailed);
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/deployment/rollback", op, Json(new { })))
            await AssertProblemAsync(r, HttpStatusCode.Conflict, FraudRefusalCodes.Conflict);   // nothing to roll back to
        foreach (var v in new[] { "v1", "v2" })
            using (var r = await SendAsync(host, HttpMethod.Post, $"api/fraud/models/{v}/promote", op, Json(new { })))
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/deployment/challenger", op, Json(new { version = "v1", fraction = 0.1, experiment = "dec-canary" })))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await SendAsync(host, HttpMethod.Put, "api/fraud/deployment/challenger", op, Json(new { version = "v1", fraction = 0.9 })))
            await AssertProblemAsync(r, HttpStatusCode.BadRequest, FraudRefusalCodes.BadRequest);
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/deployment/rollback", op, Json(new { })))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            using var body = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            var deployment = body.RootElement.GetProperty("deployment");
            Assert.Equal("v1", deployment.GetProperty("champion").GetString());
            Assert.Equal(0, deployment.GetProperty("formerChampions").GetArrayLength());
        }
        var bank = await host.TokenAsync("gw", "bank", "bank-a");
        using (var r = await SendAsync(host, HttpMethod.Post, "api/fraud/models/v2/promote", bank, Json(new { })))
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);

        var entries = new List<AuditEntry>();
        await foreach (var e in host.Audit.ReadAsync()) entries.Add(e);
        Assert.Contains(entries, e => e.Action == FraudAuditActions.Promote && e.Resource == "fraud-model/v0" && e.Outcome == AuditOutcome.Denied && e.Detail!.Contains(FraudRefusalCodes.GateFailed, StringComparison.Ordinal));
        Assert.Contains(entries, e => e.Action == FraudAuditActions.Promote && e.Resource == "fraud-model/v2" && e.Outcome == AuditOutcome.Success);
        Assert.Contains(entries, e => e.Action == FraudAuditActions.Rollback && e.Resource == "fraud-model/v1" && e.Outcome == AuditOutcome.Success);
        Assert.Contains(entries, e => e.Action == FraudAuditActions.ChallengerSet && e.Outcome == AuditOutcome.Success);
    }

    [Fact]
    public async Task A_message_that_is_not_a_batch_goes_to_the_poison_queue_with_a_reason_and_its_digit_runs_masked()
    {
        await using var host = await FunctionAppHost.StartAsync();
        var queues = host.Services.GetRequiredService<IQueueStore>();
        const string pan = "4111111111111111";
        await queues.PutAsync(FraudStore.TransactionsQueue, Encoding.UTF8.GetBytes($"{{\"tenant\":\"bank-a\",\"events\":[{{\"cardNumber\":\"{pan}\""));
        await queues.PutAsync(FraudStore.TransactionsQueue, Encoding.UTF8.GetBytes("{\"tenant\":\"Bank_A\",\"blob\":\"x\"}"));
        await queues.PutAsync(FraudStore.TransactionsQueue, Encoding.UTF8.GetBytes("{\"tenant\":\"bank-a\",\"blob\":\"fraud/intake/bank-b/1.json\",\"events\":1,\"sha256\":\"" + new string('a', 64) + "\"}"));
        var poisonQueue = PoisonMessage.PoisonQueueName(FraudStore.TransactionsQueue);
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (await queues.GetApproximateCountAsync(poisonQueue) < 3 && DateTime.UtcNow < deadline) await Task.Delay(100);
        var poisoned = (await queues.GetAsync(poisonQueue, 32, TimeSpan.FromMinutes(1)))
            .Select(m => JsonSerializer.Deserialize<PoisonMessage>(m.Body.Span, JsonSerializerOptions.Web)!).ToList();
        Assert.Equal(3, poisoned.Count);
        Assert.Contains(poisoned, p => p.LastError.Contains("intake blob of the message's tenant", StringComparison.Ordinal));   // another bank's events
        Assert.Contains(poisoned, p => p.LastError.Contains("not a fraud events message", StringComparison.Ordinal));
        Assert.Contains(poisoned, p => p.LastError.Contains("tenant must be", StringComparison.Ordinal));
        Assert.All(poisoned, p => Assert.DoesNotContain(pan, Encoding.UTF8.GetString(p.Body), StringComparison.Ordinal));
        // Each message is completed once poisoned: the queue drains (the host deletes it after the function returns).
        while (await queues.GetApproximateCountAsync(FraudStore.TransactionsQueue) > 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(0, await queues.GetApproximateCountAsync(FraudStore.TransactionsQueue));
    }

    private List<string> ExpectedAlerts(IReadOnlyList<Transaction> events, double threshold)
    {
        using var tokenizer = new CardTokenizer(CardTokenizer.NewKey());
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = scenario.V1, Threshold = threshold, Runtime = ScoringRuntime.OnnxRuntime, MaxBatch = 512 },
            tokenizer, new InMemoryCardHistoryStore(FraudScenario.K));
        var ids = new List<string>();
        foreach (var chunk in events.Chunk(512)) ids.AddRange(scorer.Score(chunk.ToList()).Alerts.Select(a => a.TransactionId));
        return ids;
    }

    private static StringContent Json(object value) => new(JsonSerializer.Serialize(value, FraudJson.Options), Encoding.UTF8, "application/json");

    private static async Task<HttpResponseMessage> SendAsync(FunctionAppHost host, HttpMethod method, string path, string token, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await host.Http.SendAsync(request);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{response.StatusCode}: {text}");
        using var body = JsonDocument.Parse(text);
        Assert.Equal(code, body.RootElement.GetProperty("code").GetString());
    }
}
