using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using Serverless.Model.Data;
using Serverless.Model.Onnx;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Security.Audit;
using Serverless.Security.Hosting;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>The server side of federated rounds, over HTTP against the in-process function app.</summary>
[Collection(FederationServerCollection.Name)]
public sealed class FederationServerTests(CompletedRoundFixture fixture)
{
    private FederationTestHost Host => fixture.Host;
    private const string Ward = CompletedRoundFixture.Federation;

    private static uint[] RingSum(IEnumerable<uint[]> inputs)
    {
        uint[]? sum = null;
        foreach (var x in inputs)
        {
            sum ??= new uint[x.Length];
            for (var i = 0; i < x.Length; i++) sum[i] = unchecked(sum[i] + x[i]);
        }
        return sum!;
    }

    [Fact]
    public async Task A_round_with_secure_aggregation_and_DP_completes_with_a_dropout_and_the_exact_sum_of_the_survivors()
    {
        var status = fixture.Status;
        Assert.True(status.Phase == RoundPhase.Completed, $"{status.Phase}: {status.Reason}");
        Assert.Equal(["hospital-1", "hospital-2", "hospital-3", "hospital-4"], status.Selected.Order());
        var dropout = Assert.Single(status.Dropouts);
        Assert.Equal(new RoundDropout("hospital-4", RoundStages.Training, RoundPhase.MaskedInput), dropout);
        Assert.Empty(status.Excluded);
        Assert.Equal("v1", status.NewVersion);
        Assert.True(status.Promoted, status.Reason);
        Assert.Equal(3, status.Metrics["contributors"]);
        Assert.Equal(fixture.Cohort.Hospitals[4].Patients.Count, status.Metrics["holdoutPatients"]);
        Assert.InRange(status.Metrics["auroc"], 0, 1);

        // Statistics (decision 0023): the v0 preprocessor's statistics are exactly the release of the securely summed, noised
        // inputs of all four hospitals, and agree with the noise-free bounded statistics to within the calibrated noise.
        var plan = (await Host.Store.GetPlanAsync(Ward, 1))!;
        var mechanism = plan.StatisticsPrivacy!;
        var v0 = ModelCheckpoint.FromJson((await Host.Store.GetCheckpointAsync(Ward, "v0"))!);
        var statsSum = RingSum(fixture.Agents.Select(a => a.Inputs[(1, RoundStages.Statistics)]));
        var expected = RoundCoordinator.PreprocessorFromSum(plan, statsSum).Statistics;
        Assert.Equal(expected.Means, v0.Preprocessor.Statistics.Means);
        Assert.Equal(expected.StandardDeviations, v0.Preprocessor.Statistics.StandardDeviations);
        var bounded = new double[3 * plan.StatisticsColumns.Length];
        foreach (var h in fixture.Cohort.Hospitals.Take(4))
        {
            var c = mechanism.Contributions(CohortGenerator.Schema, h.Patients);
            for (var i = 0; i < c.Length; i++) bounded[i] += c[i];
        }
        var central = mechanism.Release(plan.StatisticsColumns, bounded);
        var sumNoise = mechanism.TargetStd * 2;   // four shares of the full std
        for (var i = 0; i < central.Means.Count; i++)
        {
            var width = mechanism.Ranges[i].Upper - mechanism.Ranges[i].Lower;
            Assert.Equal(central.Means[i], v0.Preprocessor.Statistics.Means[i], 5 * sumNoise / central.Counts[i] * width);
            Assert.NotEqual(central.Means[i], v0.Preprocessor.Statistics.Means[i]);   // noised, not exact
        }

        // Training: v1 = v0 + the decoded mean of the three survivors' ring inputs, bit for bit (the dropout's masks were removed).
        var v1 = ModelCheckpoint.FromJson((await Host.Store.GetCheckpointAsync(Ward, "v1"))!);
        var (mean, weight) = UpdateEncoding.Decode(RingSum(fixture.Agents.Take(3).Select(a => a.Inputs[(1, RoundStages.Training)])), plan.Encoding!);
        Assert.Equal(3.0, weight, 1e-6);
        var want = new float[v0.Parameters.Length];
        for (var i = 0; i < want.Length; i++) want[i] = v0.Parameters[i] + mean[i];
        Assert.Equal(want, v1.Parameters);
        Assert.False(fixture.Agents[3].Inputs.ContainsKey((1, RoundStages.Training)));

        // Epsilon is what an independent accountant gives for one round of q = 1, z = 1.0 at delta 1e-5.
        // The first round also released the statistics: one Gaussian step at the statistics z, composed with the training step.
        var accountant = new PrivacyBudget(fixture.Config.Privacy.EpsilonBudget, fixture.Config.Privacy.Delta);
        accountant.Spend(1.0, fixture.Config.Privacy.StatisticsNoiseMultiplier);
        var epsilon = accountant.Spend(1.0, fixture.Config.Privacy.NoiseMultiplier);
        Assert.Equal(epsilon, status.EpsilonSpent, 9);
        using var view = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federation(Ward), fixture.OperatorToken);
        Assert.Equal(epsilon, (await view.ReadAsync<FederationView>()).EpsilonSpent, 9);

        // Every step is in the audit trail: the plan, each of the ten phase closes, the version written.
        var round = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync()) if (e.Resource.StartsWith($"federation/{Ward}/", StringComparison.Ordinal)) round.Add(e);
        Assert.Single(round, e => e.Action == "round.plan");
        var phases = round.Where(e => e.Action == "round.phase").Select(e => e.Detail).ToArray();
        Assert.Equal(10, phases.Select(d => d[..d.IndexOf(' ')]).Distinct().Count());   // five phases per stage, the consistency check included
        Assert.Contains(phases, d => d.StartsWith("training/MaskedInput closed: 3 messages, 3 continue, dropped [4]", StringComparison.Ordinal));
        Assert.Contains(round, e => e.Action == "model.version" && e.Resource == $"federation/{Ward}/model/v1" && e.Outcome == AuditOutcome.Success);
    }

    [Fact]
    public async Task Model_versions_are_stored_envelope_encrypted()
    {
        var raw = Host.Services.GetRequiredService<RawBlobStoreProvider>().Provider.GetContainer(FederationStore.ModelsContainer);
        foreach (var name in new[] { $"federations/{Ward}/v1.checkpoint.json", $"federations/{Ward}/v1.onnx" })
        {
            await using var blob = await raw.GetAsync(name);
            Assert.NotNull(blob);
            var head = new byte[5];
            await blob.Content.ReadExactlyAsync(head);
            Assert.Equal("SLENV"u8.ToArray(), head);
        }
        var rawHoldOut = Host.Services.GetRequiredService<RawBlobStoreProvider>().Provider.GetContainer(FederationStore.DatasetsContainer);
        await using var holdOut = await rawHoldOut.GetAsync(FederationStore.HoldOutName(Ward));
        Assert.NotNull(holdOut);
        var h = new byte[5];
        await holdOut.Content.ReadExactlyAsync(h);
        Assert.Equal("SLENV"u8.ToArray(), h);
    }

    [Fact]
    public async Task Onnx_download_needs_the_export_permission_and_is_audited()
    {
        var path = RoundRoutes.ModelOnnx(Ward, "v1");
        using (var anonymous = await Host.Http.SendAsync(HttpMethod.Get, path, null)) Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using (var op = await Host.Http.SendAsync(HttpMethod.Get, path, fixture.OperatorToken)) Assert.Equal(HttpStatusCode.Forbidden, op.StatusCode);
        using (var agent = await Host.Http.SendAsync(HttpMethod.Get, path, fixture.Agents[0].Token)) Assert.Equal(HttpStatusCode.Forbidden, agent.StatusCode);

        var scientist = await Host.TokenAsync("ds-onnx", "data-scientist");
        using var ok = await Host.Http.SendAsync(HttpMethod.Get, path, scientist);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var bytes = await ok.Content.ReadAsByteArrayAsync();
        var model = OnnxImporter.Load(new MemoryStream(bytes));
        var v1 = ModelCheckpoint.FromJson((await Host.Store.GetCheckpointAsync(Ward, "v1"))!);
        Assert.Equal(v1.Parameters, model.Parameters);
        Assert.Equal(v1.Config.Features, model.Config.Features);

        using (var missing = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.ModelOnnx(Ward, "v99"), scientist)) Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);

        var entries = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync()) entries.Add(e);
        var export = Assert.Single(entries, e => e.Action == AuditActions.DataExport && e.Actor == "ds-onnx");
        Assert.Equal($"federation/{Ward}/model/v1", export.Resource);
        Assert.Equal(AuditOutcome.Success, export.Outcome);
        Assert.Contains(entries, e => e.Action == AuditActions.RoundFinish && e.Resource == $"federation/{Ward}/round/1" && e.Outcome == AuditOutcome.Success);
        Assert.Contains(entries, e => e.Action == AuditActions.RoundStart && e.Resource == $"federation/{Ward}/round/1" && e.Actor == "op-1");
    }

    [Fact]
    public async Task Rollback_and_promote_move_the_current_version_and_are_audited()
    {
        using (var list = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Models(Ward), fixture.OperatorToken))
        {
            var versions = await list.ReadAsync<ModelVersionList>();
            Assert.Equal("v1", versions.Current);
            Assert.Equal(["v0", "v1"], versions.Versions.Select(v => v.Version));
            Assert.Equal(ModelVersionState.Retired, versions.Versions[0].State);
        }
        var scientist = await Host.TokenAsync("ds-promote", "data-scientist");
        using (var denied = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rollback(Ward), scientist)) Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);

        using (var rollback = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rollback(Ward), fixture.OperatorToken, new ModelChangeRequest("test rollback")))
        {
            Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
            var versions = await rollback.ReadAsync<ModelVersionList>();
            Assert.Equal("v0", versions.Current);
            Assert.Equal(ModelVersionState.Retired, versions.Versions.Single(v => v.Version == "v1").State);
        }
        using (var nothing = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rollback(Ward), fixture.OperatorToken)) Assert.Equal(HttpStatusCode.Conflict, nothing.StatusCode);
        using (var unknown = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Promote(Ward, "v7"), fixture.OperatorToken)) Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        using (var promote = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Promote(Ward, "v1"), fixture.OperatorToken, new ModelChangeRequest("test promote")))
        {
            Assert.Equal(HttpStatusCode.OK, promote.StatusCode);
            Assert.Equal("v1", (await promote.ReadAsync<ModelVersionList>()).Current);
        }
        using (var again = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Promote(Ward, "v1"), fixture.OperatorToken)) Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);

        var details = new List<string>();
        await foreach (var e in Host.Audit.ReadAsync())
            if (e.Action == AuditActions.ModelPromote && e.Actor == "op-1") details.Add(e.Detail);
        Assert.Contains(details, d => d.StartsWith("rollback from v1 to v0", StringComparison.Ordinal));
        Assert.Contains(details, d => d.StartsWith("promote from v0 to v1", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_round_that_would_exceed_the_spent_budget_is_refused_with_problem_details()
    {
        const string fed = "budget-spent";
        var config = CompletedRoundFixture.NewConfig(fed) with { Privacy = new FederationPrivacy { EpsilonBudget = 0.5, Delta = 1e-5, NoiseMultiplier = 1.0, ClipNorm = 0.5 } };
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, config);
        for (var h = 0; h < 3; h++)
        {
            var id = $"budget-{h}";
            using var agent = new TestAgent(Host.Http, fed, id, TestAgent.IssueCertificate(Host.DataDirectory, id), []);
            await agent.EnrollAsync();
        }
        using var refused = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(fed), fixture.OperatorToken);
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        var problem = await refused.ReadAsync<JsonElement>();
        Assert.Equal("Privacy budget exhausted", problem.GetProperty("title").GetString());
        Assert.Equal(0.5, problem.GetProperty("epsilonBudget").GetDouble());
        Assert.Equal(0, problem.GetProperty("epsilonSpent").GetDouble());
        // A new federation's first round releases the statistics too (z = 4 by default): both steps are in the figure.
        var after = new PrivacyBudget(0.5, 1e-5).EpsilonAfter([(1.0, 4.0), (1.0, 1.0)]);
        Assert.Equal(after, problem.GetProperty("epsilonAfterRound").GetDouble(), 9);
        Assert.Contains("epsilon spent so far is 0.0000", problem.GetProperty("detail").GetString());

        // A federation that has spent one round (q = 1, z = 1): lower its budget just above what it has spent (budgets only
        // go down once spent, so the shared federation is left alone); the next round is refused naming both figures.
        const string spentFed = "budget-spent-2";
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(spentFed));
        for (var h = 0; h < 3; h++)
        {
            var id = $"budget2-{h}";
            using var agent = new TestAgent(Host.Http, spentFed, id, TestAgent.IssueCertificate(Host.DataDirectory, id), []);
            await agent.EnrollAsync();
        }
        var spentBudget = new PrivacyBudget(double.MaxValue, 1e-5);
        spentBudget.Spend(1.0, 1.0);
        await Host.Store.UpdateAsync(spentFed, s => s with
        {
            Accountant = new AccountantState(spentBudget.Orders.ToArray(), spentBudget.RdpSpent.ToArray(), 1, spentBudget.EpsilonSpent), AccountedRounds = [1],
        });
        var spent = spentBudget.EpsilonSpent;
        var spentConfig = CompletedRoundFixture.NewConfig(spentFed);
        var lowered = spentConfig with { Privacy = spentConfig.Privacy with { EpsilonBudget = Math.Round(spent + 0.01, 6) } };
        using (var put = await Host.Http.SendAsync(HttpMethod.Put, RoundRoutes.Federation(spentFed), fixture.OperatorToken, lowered))
            Assert.True(put.StatusCode == HttpStatusCode.OK, await put.Content.ReadAsStringAsync());
        using (var second = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(spentFed), fixture.OperatorToken))
        {
            Assert.Equal(HttpStatusCode.Conflict, second.StatusCode);
            var p = await second.ReadAsync<JsonElement>();
            Assert.Equal("Privacy budget exhausted", p.GetProperty("title").GetString());
            Assert.Equal(spent, p.GetProperty("epsilonSpent").GetDouble(), 9);
            Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"epsilon spent so far is {spent:F4}"), p.GetProperty("detail").GetString());
        }
        var denied = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync()) if (e.Action == AuditActions.RoundStart && e.Outcome == AuditOutcome.Denied) denied.Add(e);
        Assert.Contains(denied, e => e.Resource == $"federation/{fed}");
        Assert.Contains(denied, e => e.Resource == $"federation/{spentFed}");
    }

    [Fact]
    public async Task Enrollment_refuses_bad_proofs_and_binds_a_client_to_its_certificate()
    {
        const string fed = "enroll-checks";
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed) with { AllowedClients = ["lab-a", "lab-b"] });

        async Task<HttpResponseMessage> Enroll(string clientId, System.Security.Cryptography.X509Certificates.X509Certificate2 cert, Func<string, byte[]>? sign = null, string? nonce = null)
        {
            using var c = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Challenge(fed), null);
            var challenge = await c.ReadAsync<EnrollmentChallenge>();
            using var key = cert.GetECDsaPrivateKey()!;
            var n = nonce ?? challenge.Nonce;
            var signature = sign?.Invoke(n) ?? EnrollmentProof.Sign(key, fed, clientId, n);
            return await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Enroll(fed), null, new EnrollmentRequest(clientId, cert.ExportCertificatePem(), n, signature));
        }

        using var labA = TestAgent.IssueCertificate(Host.DataDirectory, "lab-a");
        using var labA2 = TestAgent.IssueCertificate(Host.DataDirectory, "lab-a");
        using var labC = TestAgent.IssueCertificate(Host.DataDirectory, "lab-c");
        using var foreignCa = Serverless.Security.Identity.DevCertificateAuthority.Create("Foreign CA");
        using var foreign = foreignCa.IssueClientCertificate("lab-b");

        using (var r = await Enroll("lab-a", labA, n => new byte[64])) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);                  // bad signature
        using (var r = await Enroll("lab-b", labA)) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);                                     // CN is lab-a
        using (var r = await Enroll("lab-b", foreign)) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);                                  // foreign CA
        using (var r = await Enroll("lab-c", labC)) Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);                                        // not on the roster
        using (var r = await Enroll("lab-a", labA, nonce: "never-issued")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);             // unknown nonce
        using (var ok = await Enroll("lab-a", labA))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            var enrolled = await ok.ReadAsync<EnrollmentResponse>();
            Assert.Equal(1, enrolled.SecAggId);
            // The token reaches this federation's rounds, not another's.
            using var mine = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federation(fed), enrolled.Token);
            Assert.Equal(HttpStatusCode.OK, mine.StatusCode);
            using var other = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federation(Ward), enrolled.Token);
            Assert.Equal(HttpStatusCode.Forbidden, other.StatusCode);
        }
        using (var again = await Enroll("lab-a", labA)) Assert.Equal(HttpStatusCode.OK, again.StatusCode);                                      // same certificate: a fresh token
        using (var other = await Enroll("lab-a", labA2)) Assert.Equal(HttpStatusCode.Conflict, other.StatusCode);                               // another certificate for lab-a

        // Expired nonces that were never used are swept when new challenges are issued.
        await Host.Store.PutNonceAsync(fed, "1000-stale", DateTimeOffset.FromUnixTimeSeconds(1000));
        using (await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Challenge(fed), null)) { }
        Assert.Null(await Host.Store.TakeNonceAsync(fed, "1000-stale"));

        // A used nonce cannot be replayed.
        using var c2 = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Challenge(fed), null);
        var challenge2 = await c2.ReadAsync<EnrollmentChallenge>();
        using var key = labA.GetECDsaPrivateKey()!;
        var request = new EnrollmentRequest("lab-a", labA.ExportCertificatePem(), challenge2.Nonce, EnrollmentProof.Sign(key, fed, "lab-a", challenge2.Nonce));
        using (var first = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Enroll(fed), null, request)) Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using (var replay = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Enroll(fed), null, request)) Assert.Equal(HttpStatusCode.Unauthorized, replay.StatusCode);
    }

    [Fact]
    public async Task Invalid_configurations_are_refused_with_every_problem_listed()
    {
        var bad = CompletedRoundFixture.NewConfig("Bad_Id") with
        {
            MinClients = 1,
            Schedule = "every day",
            Privacy = new FederationPrivacy { Enabled = true, EpsilonBudget = -1, Delta = 2, NoiseMultiplier = 1, ClipNorm = 0.5 },
        };
        using var response = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Federations(), fixture.OperatorToken, bad);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var errors = (await response.ReadAsync<JsonElement>()).GetProperty("errors");
        foreach (var field in new[] { "id", "minClients", "schedule", "privacy.epsilonBudget", "privacy.delta" })
            Assert.True(errors.TryGetProperty(field, out _), $"no error for {field}: {errors}");
        using var unknown = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Federations(), fixture.OperatorToken, new { id = "x-fed", noSuchSetting = 1 });
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
        using var duplicate = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Federations(), fixture.OperatorToken, fixture.Config);
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
    }

    [Fact]
    public async Task A_federation_with_its_own_schema_round_trips_and_lists_only_for_its_members()
    {
        const string fed = "own-schema";
        var schema = new FeatureSchema(
            [new FeatureSpec("age", FeatureKind.Numeric), new FeatureSpec("sex", FeatureKind.Categorical, ["female", "male"])],
            [new FeatureSpec("glucose", FeatureKind.Numeric)],
            ["no", "yes"]);
        var view = await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed) with { Schema = schema });
        Assert.Equal(["age", "glucose"], view.Config.Schema!.NumericColumns());
        using (var get = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federation(fed), fixture.OperatorToken))
        {
            var back = await get.ReadAsync<FederationView>();
            Assert.Equal(2, back.Config.Schema!.StaticFeatures[1].CategoryCount);
            // What the server answers can be sent back as is (read-only members such as "classes" are not "unknown").
            using var put = await Host.Http.SendAsync(HttpMethod.Put, RoundRoutes.Federation(fed), fixture.OperatorToken, back.Config);
            Assert.True(put.StatusCode == HttpStatusCode.OK, await put.Content.ReadAsStringAsync());
        }
        using (var holdOut = new HttpRequestMessage(HttpMethod.Put, RoundRoutes.HoldOut(fed)))
        {
            holdOut.Headers.Authorization = new("Bearer", fixture.OperatorToken);
            holdOut.Content = new StringContent("patient_id\n", System.Text.Encoding.UTF8, "text/csv");
            using var response = await Host.Http.SendAsync(holdOut);
            Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        }
        // A client of another federation does not see this one in the list; the operator sees every federation.
        using (var list = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federations(), fixture.Agents[0].Token))
            Assert.Equal([Ward], (await list.ReadAsync<FederationView[]>()).Select(v => v.Config.Id));
        using (var all = await Host.Http.SendAsync(HttpMethod.Get, RoundRoutes.Federations(), fixture.OperatorToken))
            Assert.Contains(fed, (await all.ReadAsync<FederationView[]>()).Select(v => v.Config.Id));
    }

    [Fact]
    public async Task Without_secure_aggregation_updates_are_screened_and_a_scaled_attacker_is_excluded_by_name()
    {
        const string fed = "visible";
        var config = CompletedRoundFixture.NewConfig(fed) with
        {
            SecureAggregation = new FederationSecureAggregation { Enabled = false },
            Privacy = new FederationPrivacy { Enabled = false, ClipNorm = 0.5 },
            Deadlines = new FederationDeadlines { AdvertiseKeys = TimeSpan.FromSeconds(90), ShareKeys = TimeSpan.FromSeconds(90), MaskedInput = TimeSpan.FromSeconds(90),
                Unmasking = TimeSpan.FromSeconds(90), Upload = TimeSpan.FromSeconds(90) },
        };
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, config);
        var agents = new List<TestAgent>();
        try
        {
            for (var h = 0; h < 4; h++)
            {
                var id = $"visible-{h}";
                var agent = new TestAgent(Host.Http, fed, id, TestAgent.IssueCertificate(Host.DataDirectory, id), fixture.Cohort.Hospitals[h].Patients);
                await agent.EnrollAsync();
                agents.Add(agent);
            }
            agents[3].AttackScale = 50;
            using (var start = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(fed), fixture.OperatorToken))
                Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
            await Task.WhenAll(agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(2))));
            var status = await CompletedRoundFixture.WaitForRoundAsync(Host.Http, fixture.OperatorToken, fed, 1, TimeSpan.FromMinutes(2));
            Assert.True(status.Phase == RoundPhase.Completed, $"{status.Phase}: {status.Reason}");
            Assert.All(agents, a => Assert.Contains((RoundStages.Training, RoundPhase.Upload), a.Answered));
            var excluded = Assert.Single(status.Excluded);
            Assert.Equal("visible-3", excluded.ClientId);
            Assert.StartsWith("anomaly detector: update norm", excluded.Reason);
            Assert.Equal(3, status.Metrics["contributors"]);
            Assert.True(status.Metrics["updateNorm"] <= 0.5 + 1e-6);   // clipped by the server, no noise (DP off)
            Assert.Equal(0, status.EpsilonSpent);
        }
        finally
        {
            foreach (var a in agents) a.Dispose();
        }
    }

    [Fact]
    public async Task A_client_that_misses_the_statistics_stage_is_asked_again_for_training()
    {
        const string fed = "late-joiner";
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, CompletedRoundFixture.NewConfig(fed) with
        {
            Privacy = new FederationPrivacy { Enabled = false, ClipNorm = 0.5 },
            // The round waits out MaskedInput for the skipper; 30 s is still ample for the others' small models.
            Deadlines = CompletedRoundFixture.NewConfig(fed).Deadlines with { MaskedInput = TimeSpan.FromSeconds(30) },
        });
        var agents = new List<TestAgent>();
        try
        {
            for (var h = 0; h < 4; h++)
            {
                var id = $"late-{h}";
                var agent = new TestAgent(Host.Http, fed, id, TestAgent.IssueCertificate(Host.DataDirectory, id), fixture.Cohort.Hospitals[h].Patients);
                await agent.EnrollAsync();
                agents.Add(agent);
            }
            agents[2].Skip = (RoundStages.Statistics, RoundPhase.MaskedInput);   // shared its keys, then missed the deadline
            using (var start = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(fed), fixture.OperatorToken))
                Assert.Equal(HttpStatusCode.Accepted, start.StatusCode);
            var tasks = await Task.WhenAll(agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(2))));
            var status = await CompletedRoundFixture.WaitForRoundAsync(Host.Http, fixture.OperatorToken, fed, 1, TimeSpan.FromMinutes(2));
            Assert.True(status.Phase == RoundPhase.Completed, $"{status.Phase}: {status.Reason}");
            Assert.Equal(new RoundDropout("late-2", RoundStages.Statistics, RoundPhase.MaskedInput), Assert.Single(status.Dropouts));
            Assert.Equal(4, status.Metrics["contributors"]);                     // back for training
            Assert.Contains((RoundStages.Training, RoundPhase.Unmasking), agents[2].Answered);
            Assert.All(tasks, t => Assert.Equal(ClientAction.Done, t!.Action));

            // The statistics are exactly those of the three hospitals whose masked sums arrived.
            var v0 = ModelCheckpoint.FromJson((await Host.Store.GetCheckpointAsync(fed, "v0"))!);
            var plan = (await Host.Store.GetPlanAsync(fed, 1))!;
            var three = RingSum(new[] { 0, 1, 3 }.Select(i => agents[i].Inputs[(1, RoundStages.Statistics)]));
            Assert.Equal(RoundCoordinator.PreprocessorFromSum(plan, three).Statistics.Means, v0.Preprocessor.Statistics.Means);
        }
        finally
        {
            foreach (var a in agents) a.Dispose();
        }
    }
}
