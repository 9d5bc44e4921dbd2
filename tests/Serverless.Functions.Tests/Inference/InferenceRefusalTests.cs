using System.Net;
using System.Text;
using System.Text.Json;
using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Security.Audit;

namespace Serverless.Functions.Tests.Inference;

/// <summary>One host with a published model and partner A's registered keys, shared by the refusal tests (each uses its own batch ids).</summary>
public sealed class RefusalHost : IAsyncLifetime
{
    public const string Version = "he-refusals";
    public const string TenantA = "insurer-a";
    public const string TenantB = "insurer-b";

    private InferenceScenario? _scenario;

    public InferenceHost Host { get; private set; } = null!;
    public PartnerKeys KeysA { get; private set; } = null!;
    public PartnerKeys KeysB { get; private set; } = null!;
    public string TokenA { get; private set; } = "";
    public string TokenB { get; private set; } = "";

    /// <summary>A few records are enough: the size of a batch is set by its ciphertext groups, not by its records.</summary>
    public SequenceDataset Records { get; private set; } = null!;

    public void Use(InferenceScenario scenario) => _scenario ??= scenario;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task EnsureStartedAsync()
    {
        if (Host is not null) return;
        var scenario = _scenario!;
        Host = await InferenceHost.StartAsync();
        await Host.PublishAsync(scenario, Version);
        var plan = EvaluationPlan.FromJson(scenario.Model.Plan.ToJson(), allowInsecureForTests: true);
        KeysA = PartnerKeys.Generate(plan);
        KeysB = PartnerKeys.Generate(plan);
        TokenA = await Host.TokenAsync("svc-a", "partner", TenantA);
        TokenB = await Host.TokenAsync("svc-b", "partner", TenantB);
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/partners/{TenantA}/keys/{Version}", TokenA, KeysA.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/partners/{TenantB}/keys/{Version}", TokenB, KeysB.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        Records = scenario.Records.Subset(Enumerable.Range(0, 40).ToArray());
    }

    public async Task DisposeAsync()
    {
        if (Host is not null) await Host.DisposeAsync();
        KeysA?.Dispose();
        KeysB?.Dispose();
    }
}

/// <summary>
/// Bad input is refused with a clear error (ProblemDetails over HTTP; for the queue a 422 on the poll and
/// the reason in partner-batches-poison), nothing is lost (the batch blob and the message body are kept),
/// and every refusal is audited.
/// </summary>
[Collection(InferenceCollection.Name)]
public sealed class InferenceRefusalTests : IClassFixture<RefusalHost>
{
    private readonly InferenceScenario _scenario;
    private readonly RefusalHost _fixture;

    public InferenceRefusalTests(InferenceScenario scenario, RefusalHost fixture)
    {
        _scenario = scenario;
        _fixture = fixture;
        fixture.Use(scenario);
    }

    private InferenceHost Host => _fixture.Host;

    [Fact]
    public async Task Keys_and_batches_under_other_CKKS_parameters_are_refused_as_wrong_parameters()
    {
        await _fixture.EnsureStartedAsync();
        // One level more: a plan the partner might have built for another model version.
        var otherPlan = HeModel.Create(_scenario.Model.Checkpoint, HeModel.CreateParameters(4096, HeModel.LevelsRequired(InferenceScenario.Steps) + 1, allowInsecureForTests: true), "other").Plan;
        using var otherKeys = PartnerKeys.Generate(otherPlan);
        const string tenant = "insurer-wrong-params";
        var token = await Host.TokenAsync("svc-w", "partner", tenant);

        using (var response = await Host.SendAsync(HttpMethod.Put, $"api/partners/{tenant}/keys/{RefusalHost.Version}", token, otherKeys.EvaluationKeys.ToBytes()))
            await AssertProblemAsync(response, HttpStatusCode.BadRequest, "wrong-parameters", "other CKKS parameters");
        Assert.NotEmpty(await Host.AuditAsync(e => e.Action == "inference.keys.register" && e.Outcome == AuditOutcome.Denied && e.Resource == $"keys/{tenant}/{RefusalHost.Version}"
                                                   && e.Detail.StartsWith("wrong-parameters:", StringComparison.Ordinal)));

        // A batch under the other parameters, through the queue, from a partner whose keys are registered.
        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0, 1, 2]), otherKeys).ToBytes();
        await AssertQueueRefusalAsync(RefusalHost.TenantA, "wrong-params-1", batch, _fixture.TokenA, "wrong-parameters", "other CKKS parameters");
    }

    [Fact]
    public async Task Keys_of_another_partner_are_refused_at_registration_on_another_tenant_and_in_a_batch()
    {
        await _fixture.EnsureStartedAsync();
        // B registers A's public bundle under its own tenant (a fresh model version, so B has no keys there yet).
        const string version2 = "he-refusals-v2";
        await Host.PublishAsync(_scenario, version2);
        using (var response = await Host.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantB}/keys/{version2}", _fixture.TokenB, _fixture.KeysA.EvaluationKeys.ToBytes()))
            await AssertProblemAsync(response, HttpStatusCode.Forbidden, "foreign-keys", "registered by another partner");

        // B cannot act on A's tenant at all: the gate answers 403 and audits it.
        using (var response = await Host.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantA}/keys/{version2}", _fixture.TokenB, _fixture.KeysB.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.NotEmpty(await Host.AuditAsync(e => e.Action == AuditActions.AccessDenied && e.Actor == "svc-b"));

        // B submits (as B) a batch encrypted under A's keys: refused, named as another partner's keys.
        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0, 1]), _fixture.KeysA).ToBytes();
        await AssertQueueRefusalAsync(RefusalHost.TenantB, "foreign-1", batch, _fixture.TokenB, "foreign-keys", "another partner");

        // B puts a message naming A's tenant with B's token: poisoned before anything runs.
        var messageId = await Host.EnqueueAsync(RefusalHost.TenantA, "impostor-1", RefusalHost.Version, batch, _fixture.TokenB);
        var poison = Assert.Single(await Host.PoisonAsync(p => p.MessageId == messageId));
        Assert.StartsWith("forbidden: tenant 'insurer-b' has no access", poison.LastError);
        Assert.DoesNotContain(_fixture.TokenB, Encoding.UTF8.GetString(poison.Body)); // the token is redacted, the rest kept
        Assert.Contains("impostor-1", Encoding.UTF8.GetString(poison.Body));
        Assert.NotEmpty(await Host.AuditAsync(e => e.Action == "inference.batch.refused" && e.Resource == $"batch/{RefusalHost.TenantA}/impostor-1" && e.Actor == "svc-b"));
    }

    [Fact]
    public async Task A_truncated_ciphertext_is_refused_over_HTTP_and_through_the_queue()
    {
        await _fixture.EnsureStartedAsync();
        var batch = BatchEncryptor.Encrypt(_fixture.Records, _fixture.KeysA).ToBytes();
        var truncated = batch[..(batch.Length - 1000)];

        using (var response = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/truncated-http?modelVersion={RefusalHost.Version}", _fixture.TokenA, truncated))
            await AssertProblemAsync(response, HttpStatusCode.BadRequest, "malformed-batch", "truncated");
        Assert.NotEmpty(await Host.AuditAsync(e => e.Action == "inference.batch.refused" && e.Resource == $"batch/{RefusalHost.TenantA}/truncated-http"));

        await AssertQueueRefusalAsync(RefusalHost.TenantA, "truncated-queue", truncated, _fixture.TokenA, "malformed-batch", "truncated");
    }

    [Fact]
    public async Task A_batch_over_the_size_limit_or_the_record_limit_is_refused()
    {
        await _fixture.EnsureStartedAsync();
        var batch = BatchEncryptor.Encrypt(_fixture.Records, _fixture.KeysA).ToBytes();
        await using var small = await InferenceHost.StartAsync(maxBatchBytes: batch.Length - 1);
        await small.PublishAsync(_scenario, RefusalHost.Version);
        var token = await small.TokenAsync("svc-a", "partner", RefusalHost.TenantA);
        using (var r = await small.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantA}/keys/{RefusalHost.Version}", token, _fixture.KeysA.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        using (var response = await small.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/big-http?modelVersion={RefusalHost.Version}", token, batch))
            await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "batch-too-large", "over the limit");
        await AssertQueueRefusalAsync(RefusalHost.TenantA, "big-queue", batch, token, "batch-too-large", "over the limit", small);

        // A model version that accepts at most 10 records per batch refuses 40 ("too many records").
        const string limited = "he-ten-records";
        using (var published = await Host.SendAsync(HttpMethod.Put, $"api/inference/models/{limited}", await Host.TokenAsync("op", "operator"),
                   JsonSerializer.SerializeToUtf8Bytes(new { checkpoint = JsonDocument.Parse(_scenario.Model.Checkpoint.ToJson()).RootElement, ckks = new { n = _scenario.Parameters.N, levels = _scenario.Parameters.MaxLevel }, maxRecords = 10, tenants = new[] { "*" } }),
                   "application/json"))
            Assert.Equal(HttpStatusCode.Created, published.StatusCode);
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantA}/keys/{limited}", _fixture.TokenA, _fixture.KeysA.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var response = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/forty?modelVersion={limited}", _fixture.TokenA, batch))
            await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "batch-too-large", "too many records, 40 exceeds the limit of 10");
    }

    [Fact]
    public async Task A_version_is_read_registered_and_scored_only_by_its_entitled_tenants_and_revocation_takes_effect_at_once()
    {
        await _fixture.EnsureStartedAsync();
        var op = await Host.TokenAsync("op-entitle", "operator");
        // No entitlement named: refused, nothing is open by omission.
        var bare = JsonSerializer.SerializeToUtf8Bytes(new { checkpoint = JsonDocument.Parse(_scenario.Model.Checkpoint.ToJson()).RootElement, ckks = new { n = _scenario.Parameters.N, levels = _scenario.Parameters.MaxLevel } });
        using (var r = await Host.SendAsync(HttpMethod.Put, "api/inference/models/he-unscoped", op, bare, "application/json"))
            await AssertProblemAsync(r, HttpStatusCode.BadRequest, "bad-message", "tenants is required");

        const string scoped = "he-scoped";
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/inference/models/{scoped}", op, _scenario.Publication(RefusalHost.TenantA), "application/json"))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        using (var r = await Host.SendAsync(HttpMethod.Get, $"api/inference/models/{scoped}", _fixture.TokenA))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await Host.SendAsync(HttpMethod.Get, $"api/inference/models/{scoped}", _fixture.TokenB))
            await AssertProblemAsync(r, HttpStatusCode.Forbidden, "not-entitled", $"'{RefusalHost.TenantB}' is not entitled");
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantB}/keys/{scoped}", _fixture.TokenB, _fixture.KeysB.EvaluationKeys.ToBytes()))
            await AssertProblemAsync(r, HttpStatusCode.Forbidden, "not-entitled", "not entitled");
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/partners/{RefusalHost.TenantA}/keys/{scoped}", _fixture.TokenA, _fixture.KeysA.EvaluationKeys.ToBytes()))
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);

        // Revoke A, grant B: A's registered keys score nothing more, on its very next batch.
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/inference/models/{scoped}/tenants", _fixture.TokenA, JsonSerializer.SerializeToUtf8Bytes(new { tenants = new[] { RefusalHost.TenantA } }), "application/json"))
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);   // a partner cannot entitle itself
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/inference/models/{scoped}/tenants", op, JsonSerializer.SerializeToUtf8Bytes(new { tenants = new[] { RefusalHost.TenantB } }), "application/json"))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0, 1]), _fixture.KeysA).ToBytes();
        using (var r = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/revoked?modelVersion={scoped}", _fixture.TokenA, batch))
            await AssertProblemAsync(r, HttpStatusCode.Forbidden, "not-entitled", "not entitled");
        using (var r = await Host.SendAsync(HttpMethod.Get, $"api/inference/models/{scoped}", _fixture.TokenB))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await Host.SendAsync(HttpMethod.Put, $"api/inference/models/{scoped}/tenants", op, JsonSerializer.SerializeToUtf8Bytes(new { tenants = new[] { "*", "x" } }), "application/json"))
            await AssertProblemAsync(r, HttpStatusCode.BadRequest, "bad-message", "stands alone");
        Assert.Single(await Host.AuditAsync(e => e.Action == "inference.model.entitle" && e.Resource == $"inference-model/{scoped}" && e.Outcome == Serverless.Security.Audit.AuditOutcome.Success));
    }

    [Fact]
    public async Task Malformed_messages_bad_tokens_and_reused_batch_ids_land_in_the_poison_queue_with_the_reason()
    {
        await _fixture.EnsureStartedAsync();
        await Host.Queues.CreateQueueAsync("partner-batches");
        var notJson = await Host.Queues.PutAsync("partner-batches", "this is not json"u8.ToArray());
        var poison = Assert.Single(await Host.PoisonAsync(p => p.MessageId == notJson));
        Assert.StartsWith("bad-message: the message is not a batch message", poison.LastError);
        Assert.Equal("this is not json", Encoding.UTF8.GetString(poison.Body));

        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0, 1, 2]), _fixture.KeysA).ToBytes();
        var forged = await Host.EnqueueAsync(RefusalHost.TenantA, "forged-token", RefusalHost.Version, batch, _fixture.TokenA[..^4] + "AAAA");
        poison = Assert.Single(await Host.PoisonAsync(p => p.MessageId == forged));
        Assert.StartsWith("unauthenticated: the bearer token is invalid", poison.LastError);

        // The same batch id with other content: a conflict, never a second evaluation.
        using (var first = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/reused?modelVersion={RefusalHost.Version}", _fixture.TokenA, batch))
            Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        using (var done = await Host.WaitAsync(RefusalHost.TenantA, "reused", _fixture.TokenA))
            Assert.Equal(HttpStatusCode.OK, done.StatusCode);
        var other = BatchEncryptor.Encrypt(_fixture.Records.Subset([3, 4]), _fixture.KeysA).ToBytes();
        using (var second = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/reused?modelVersion={RefusalHost.Version}", _fixture.TokenA, other))
            await AssertProblemAsync(second, HttpStatusCode.Conflict, "batch-id-conflict", "already used for other content");
        using (var same = await Host.SendAsync(HttpMethod.Post, $"api/partners/{RefusalHost.TenantA}/batches/reused?modelVersion={RefusalHost.Version}", _fixture.TokenA, batch))
        {
            Assert.Equal(HttpStatusCode.Accepted, same.StatusCode);
            using var receipt = JsonDocument.Parse(await same.Content.ReadAsStringAsync());
            Assert.True(receipt.RootElement.GetProperty("duplicate").GetBoolean());
        }
        Assert.Single(await Host.AuditAsync(e => e.Action == "inference.batch.complete" && e.Resource == $"batch/{RefusalHost.TenantA}/reused"));
    }

    /// <summary>
    /// A message that fails on every delivery (here a truncated refusal record makes each attempt throw) is not
    /// left for the host to poison as it is: on the last attempt the function poisons it itself, with its
    /// token redacted and the failure's type as the reason, and audits it.
    /// </summary>
    [Fact]
    public async Task A_message_that_fails_on_every_attempt_is_poisoned_on_the_last_one_with_its_token_redacted()
    {
        await _fixture.EnsureStartedAsync();
        const string batchId = "always-fails";
        string corrupt = Path.Combine(Host.DataDirectory, "blobs", "partner-results", RefusalHost.TenantA, batchId, "refusal.json.blob");
        Directory.CreateDirectory(Path.GetDirectoryName(corrupt)!);
        await File.WriteAllBytesAsync(corrupt, [1, 2, 3]);
        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0]), _fixture.KeysA).ToBytes();

        var messageId = await Host.EnqueueAsync(RefusalHost.TenantA, batchId, RefusalHost.Version, batch, _fixture.TokenA);

        var poison = Assert.Single(await Host.PoisonAsync(p => p.MessageId == messageId));
        Assert.Equal("processing-failed: attempt 5 of 5 failed (EndOfStreamException)", poison.LastError);
        Assert.Equal(5, poison.DequeueCount);
        string kept = Encoding.UTF8.GetString(poison.Body);
        Assert.DoesNotContain(_fixture.TokenA, kept);
        Assert.Contains("[redacted]", kept);
        Assert.Contains(batchId, kept);
        Assert.Single(await Host.AuditAsync(e => e.Action == "inference.batch.refused" && e.Resource == $"batch/{RefusalHost.TenantA}/{batchId}"));
        // The function completed the message, so the host did not poison it as well, token and all.
        await Task.Delay(TimeSpan.FromSeconds(3));
        foreach (var m in await Host.Queues.GetAsync("partner-batches-poison", 32, TimeSpan.FromSeconds(1)))
            Assert.DoesNotContain(_fixture.TokenA, Encoding.UTF8.GetString(m.Body.Span));
    }

    [Fact]
    public async Task A_blob_that_changed_after_submission_is_refused_as_a_digest_mismatch()
    {
        await _fixture.EnsureStartedAsync();
        var batch = BatchEncryptor.Encrypt(_fixture.Records.Subset([0, 1, 2]), _fixture.KeysA).ToBytes();
        var announced = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(batch));
        batch[^10] ^= 0x01; // one bit differs from what the message announced
        var messageId = await Host.EnqueueAsync(RefusalHost.TenantA, "changed-1", RefusalHost.Version, batch, _fixture.TokenA, sha256: announced);
        using (var response = await Host.WaitAsync(RefusalHost.TenantA, "changed-1", _fixture.TokenA))
            await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, "digest-mismatch", "changed or corrupted after submission");
        var poison = Assert.Single(await Host.PoisonAsync(p => p.MessageId == messageId));
        Assert.StartsWith("digest-mismatch:", poison.LastError);
    }

    /// <summary>Submits through the queue and checks the three traces of a refusal: poll 422 with the code, poison entry with the reason, audit entry; the blob is kept.</summary>
    private async Task AssertQueueRefusalAsync(string tenant, string batchId, byte[] batch, string token, string code, string reasonPart, InferenceHost? on = null)
    {
        var host = on ?? Host;
        var messageId = await host.EnqueueAsync(tenant, batchId, RefusalHost.Version, batch, token);
        using (var response = await host.WaitAsync(tenant, batchId, token))
            await AssertProblemAsync(response, HttpStatusCode.UnprocessableEntity, code, reasonPart);
        var poison = Assert.Single(await host.PoisonAsync(p => p.MessageId == messageId));
        Assert.StartsWith(code + ":", poison.LastError);
        Assert.Contains(reasonPart, poison.LastError);
        Assert.Contains(batchId, Encoding.UTF8.GetString(poison.Body));
        Assert.NotEmpty(await host.AuditAsync(e => e.Action == "inference.batch.refused" && e.Resource == $"batch/{tenant}/{batchId}" && e.Detail.StartsWith(code + ":", StringComparison.Ordinal)));
        await using var kept = await host.Batches.GetAsync($"{tenant}/{batchId}");
        Assert.NotNull(kept);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode status, string code, string detailPart)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(body);
        Assert.Equal(code, problem.RootElement.GetProperty("code").GetString());
        Assert.Contains(detailPart, problem.RootElement.GetProperty("detail").GetString());
    }
}
