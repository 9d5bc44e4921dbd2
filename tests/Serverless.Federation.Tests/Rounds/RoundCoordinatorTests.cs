using Serverless.Federation.Compression;
using Serverless.Federation.Rounds;
using Serverless.Federation.SecureAggregation;
using Serverless.Federation.Strategies;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Federation.Tests.Rounds;

public sealed class RoundCoordinatorTests
{
    private static FederationState State(int clients, FederationConfig? config = null) => new()
    {
        Config = config ?? new FederationConfig { Id = "unit", MinClients = 3 },
        Clients = Enumerable.Range(1, clients).Select(i => new EnrolledClient($"c{i}", i, new string('a', 64), DateTimeOffset.UnixEpoch, CertificatePem.Value)).ToArray(),
    };

    // One P-256 certificate stands in for each client's enrolled one: the plan only needs a signing identity per client.
    private static readonly Lazy<string> CertificatePem = new(() =>
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=unit", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return cert.ExportCertificatePem();
    });

    [Fact]
    public void The_default_configuration_is_valid_and_every_bad_field_is_named()
    {
        Assert.Empty(FederationRules.Validate(new FederationConfig { Id = "icu-network" }));
        var errors = FederationRules.Validate(new FederationConfig
        {
            Id = "A",
            MinClients = 1,
            ClientsPerRound = 20_000,
            Model = new FederationModel { Steps = 0 },
            Privacy = new FederationPrivacy { EpsilonBudget = 0, Delta = 1, NoiseMultiplier = 0, ClipNorm = -1 },
            SecureAggregation = new FederationSecureAggregation { RingBits = 4 },
            Deadlines = new FederationDeadlines { Upload = TimeSpan.Zero },
            AllowedClients = ["ok", "not ok"],
        }).Select(e => e.Field).ToHashSet();
        foreach (var field in new[] { "id", "minClients", "clientsPerRound", "model.steps", "privacy.epsilonBudget", "privacy.delta", "privacy.noiseMultiplier",
                     "privacy.clipNorm", "secureAggregation.ringBits", "deadlines.upload", "allowedClients" })
            Assert.Contains(field, errors);
        Assert.True(FederationRules.IsValidId("a-b-c"));
        Assert.False(FederationRules.IsValidId("a--b"));
        Assert.False(FederationRules.IsValidId("-ab"));
    }

    [Fact]
    public void Too_few_clients_or_an_exceeded_budget_refuse_the_round()
    {
        var few = Assert.Throws<RoundRefusedException>(() => RoundCoordinator.CheckCanStart(State(2)));
        Assert.Equal("Too few clients", few.Title);
        var tight = State(4, new FederationConfig { Id = "unit", MinClients = 3, Privacy = new FederationPrivacy { EpsilonBudget = 0.1, NoiseMultiplier = 1 } });
        var budget = Assert.Throws<RoundRefusedException>(() => RoundCoordinator.CheckCanStart(tight));
        Assert.Equal("Privacy budget exhausted", budget.Title);
        Assert.Equal(0, budget.EpsilonSpent);
        Assert.Equal(0.1, budget.EpsilonBudget);
        // The first round releases the statistics as well: both steps are in the figure (z = 4 for the statistics by default).
        Assert.Equal(new PrivacyBudget(0.1, 1e-5).EpsilonAfter([(1, 4.0), (1, 1)]), budget.EpsilonAfterRound!.Value, 12);
        var later = Assert.Throws<RoundRefusedException>(() => RoundCoordinator.CheckCanStart(tight with { PreprocessorJson = "{}" }));
        Assert.Equal(new PrivacyBudget(0.1, 1e-5).EpsilonAfter(1, 1), later.EpsilonAfterRound!.Value, 12);
        // With privacy off there is no budget.
        RoundCoordinator.CheckCanStart(tight with { Config = tight.Config with { Privacy = new FederationPrivacy { Enabled = false, ClipNorm = 0 } } });
    }

    [Fact]
    public void The_accountant_is_charged_once_per_round_and_eventually_refuses()
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3, ClientsPerRound = 3, Privacy = new FederationPrivacy { EpsilonBudget = 5, NoiseMultiplier = 1.5 } };
        var state = State(6, config);
        var independent = new PrivacyBudget(5, 1e-5);
        var round = 0;
        while (true)
        {
            round++;
            RoundPlan plan;
            try { plan = RoundCoordinator.Plan(state, round, DateTimeOffset.UnixEpoch, "test", new Random(round)); }
            catch (RoundRefusedException) { break; }
            Assert.Equal(1.0, plan.SamplingRate);   // 3 of 6 selected, but fixed-size selection claims no amplification
            Assert.Equal(3, plan.Selected.Length);
            state = RoundCoordinator.Charge(state, plan);
            Assert.Same(state, RoundCoordinator.Charge(state, plan));   // a retried commit charges nothing
            // Round 1 also released the statistics (one Gaussian step at z = 4), charged with it.
            if (plan.StageOf(RoundStages.Statistics) is not null) independent.Spend(1.0, config.Privacy.StatisticsNoiseMultiplier);
            Assert.Equal(independent.Spend(1.0, 1.5), state.EpsilonSpent, 12);
            state = state with { PreprocessorJson = state.PreprocessorJson ?? "{}", CurrentVersion = state.CurrentVersion ?? "v0" };
            Assert.True(round < 500);
        }
        Assert.True(round > 2);

        // A round admitted before the operator lowered the budget is still charged (what was spent is spent).
        var admitted = RoundCoordinator.Plan(State(6, config), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        var lowered = State(6, config with { Privacy = config.Privacy with { EpsilonBudget = 0.01 } });
        Assert.Equal(new PrivacyBudget(5, 1e-5).EpsilonAfter([(1.0, 4.0), (1.0, 1.5)]), RoundCoordinator.Charge(lowered, admitted).EpsilonSpent, 12);
        Assert.True(independent.EpsilonAfter(1.0, 1.5) > 5);
        var fits = 0;
        var counter = new PrivacyBudget(5, 1e-5);
        counter.Spend(1.0, 4.0);
        while (counter.EpsilonAfter(1.0, 1.5) <= 5) { counter.Spend(1.0, 1.5); fits++; }
        Assert.Equal(fits + 1, round);   // refused at the first round that would exceed the budget
        Assert.Equal(round, state.Accountant!.Steps);   // round - 1 training steps and the statistics step
    }

    [Fact]
    public void A_plan_fixes_stages_noise_and_encoding()
    {
        var plan = RoundCoordinator.Plan(State(5), 1, DateTimeOffset.UnixEpoch, "op", new Random(1));
        Assert.Equal([RoundStages.Statistics, RoundStages.Training], plan.Stages.Select(s => s.Stage));
        Assert.Equal("v0", plan.BaseVersion);
        var training = plan.StageOf(RoundStages.Training)!.Parameters!;
        Assert.Equal([1, 2, 3, 4, 5], training.ClientIds);
        Assert.Equal(4, training.Threshold);            // the active-server floor floor(2 * 5 / 3) + 1 (the fraction gives floor(0.5 * 4) + 1 = 3)
        Assert.True(training.RequireSignatures);
        Assert.Equal(4, plan.MinSurvivors);
        // Each share carries the whole z * S: t - 1 = 3 colluders may subtract theirs from a sum of t = 4 survivors.
        Assert.Equal(GaussianMechanism.DistributedStd(1.0, 0.5, 4, colluding: 3), plan.Fit.NoiseStd, 12);
        Assert.Equal(1.0 * 0.5, plan.Fit.NoiseStd, 12);
        Assert.Equal(RoundCoordinator.MaliciousSecurePhases, RoundCoordinator.PhasesOf(training));
        Assert.Equal(5, plan.VerificationKeys().Count);
        Assert.Equal(0, plan.CentralNoiseStd);
        Assert.Equal(plan.Encoding!.ParameterCount + 1, training.VectorLength);
        Assert.Equal(StatisticsEncoding.VectorLength(plan.StatisticsColumns.Length), plan.StageOf(RoundStages.Statistics)!.Parameters!.VectorLength);
        Assert.NotEqual(training.RoundId, plan.StageOf(RoundStages.Statistics)!.Parameters!.RoundId);

        var plain = RoundCoordinator.Plan(State(5, new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { Enabled = false } })
            with { PreprocessorJson = "{}" , CurrentVersion = "v3" }, 4, DateTimeOffset.UnixEpoch, "op", new Random(1));
        Assert.Equal([RoundStages.Training], plain.Stages.Select(s => s.Stage));
        Assert.Null(plain.Encoding);
        Assert.Equal(0.5, plain.CentralNoiseStd, 12);   // z * S on the sum
        Assert.Equal(0, plain.Fit.NoiseStd);
        Assert.Equal("v3", plain.BaseVersion);
    }

    [Fact]
    public void An_active_server_round_refuses_a_threshold_below_the_floor_and_a_server_chosen_graph()
    {
        var low = new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { Threshold = 4 } };
        var e = Assert.Throws<RoundRefusedException>(() => RoundCoordinator.Plan(State(8, low), 1, DateTimeOffset.UnixEpoch, "op", new Random(1)));
        Assert.Contains("at least 6", e.Message);   // the n = 8, t = 4
        var plus = new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { SecAggPlus = true } };
        var p = RoundCoordinator.Plan(State(64, plus), 1, DateTimeOffset.UnixEpoch, "op", new Random(1)).StageOf(RoundStages.Training)!.Parameters!;
        Assert.True(p.JointGraphSeed);
        Assert.Empty(p.GraphSeed);
        Assert.True(p.Threshold >= p.MaliciousThresholdFloor());
        // Without the variant (measurements only) the old protocol: no signatures, the server's seed, four phases.
        var old = new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { MaliciousServer = false } };
        var q = RoundCoordinator.Plan(State(5, old), 1, DateTimeOffset.UnixEpoch, "op", new Random(1)).StageOf(RoundStages.Training)!.Parameters!;
        Assert.False(q.RequireSignatures);
        Assert.Equal(3, q.Threshold);
        Assert.Equal(RoundCoordinator.SecurePhases, RoundCoordinator.PhasesOf(q));
        // Enrolled before certificates were kept: refused, not silently unsigned.
        var state = State(5) with { Clients = State(5).Clients.Select(c => c with { CertificatePem = null }).ToArray() };
        Assert.Contains("enroll again", Assert.Throws<RoundRefusedException>(() => RoundCoordinator.Plan(state, 1, DateTimeOffset.UnixEpoch, "op", new Random(1))).Message);
    }

    [Theory]
    [InlineData(4, 8, 10)]
    [InlineData(5, 8, 11)]
    [InlineData(64, 8, 14)]
    [InlineData(4, 0, 32)]
    public void The_training_ring_is_b_bits_plus_log2_n_of_headroom(int clients, int bits, int ring)
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { QuantizationBits = bits } };
        var plan = RoundCoordinator.Plan(State(clients, config), 1, DateTimeOffset.UnixEpoch, "op", new Random(1));
        Assert.Equal(ring, plan.StageOf(RoundStages.Training)!.Parameters!.RingBits);
        Assert.Equal(ring, plan.Encoding!.RingBits);
        // n clients at the bound sum without wrapping, and each client keeps at least b - 1 bits of magnitude.
        var codec = UpdateEncoding.Codec(plan.Encoding);
        Assert.True(codec.Scale * plan.Encoding.CoordinateBound * clients <= Math.Pow(2, ring - 1) - 1);
        if (bits > 0) Assert.True(codec.Scale * plan.Encoding.CoordinateBound >= Math.Pow(2, bits - 2));
    }

    [Fact]
    public void The_coordinate_range_narrows_with_the_model_but_still_exposes_an_unclipped_client()
    {
        // No noise share: S min(1, 8 / sqrt(d)) with 1 % headroom; small models keep the whole clip norm.
        Assert.Equal(25 * 1.01, RoundCoordinator.CoordinateBound(25, 0, 64), 9);
        Assert.Equal(25 * 8 / Math.Sqrt(921) * 1.01, RoundCoordinator.CoordinateBound(25, 0, 921), 9);
        // A noise share widens it by six of its standard deviations; without clipping the range is 1.
        Assert.Equal((5 + 6 * 2.0) * 1.01, RoundCoordinator.CoordinateBound(5, 2.0, 921), 9);
        Assert.Equal(1.01, RoundCoordinator.CoordinateBound(0, 0, 921), 9);
        // An update scaled far past S and clamped to the range keeps a norm of 8 S: over the aggregate-norm check's S even
        // when averaged with three honest clients pulling the other way (seeded).
        var random = new Random(14);
        foreach (var d in new[] { 65, 200, 921, 5000 })
        {
            var b = RoundCoordinator.CoordinateBound(1, 0, d);
            var attacker = Enumerable.Range(0, d).Select(_ => Math.Clamp(100 * (random.NextDouble() * 2 - 1), -b, b)).ToArray();
            var norm = Math.Sqrt(attacker.Sum(x => x * x));
            Assert.InRange(norm, 7.9, 8.1);
            Assert.True((norm - 3) / 4 > 1, $"d = {d}: the mean of the attacker and three honest clients at norm S stays above S");
        }
    }

    [Fact]
    public void Seven_bits_in_the_narrower_range_decode_the_mean_closer_than_eight_bits_over_the_clip_norm_seeded()
    {
        // An honest DP-SGD update of the 921-parameter model: coordinates of about 0.4 (norms 10-15), weights near 0.75.
        const int d = 921, n = 4;
        double[] weights = [0.75, 0.8, 0.7, 0.77];
        var totalWeight = weights.Sum();
        double Error(int bits, double bound, int seed)
        {
            var random = new Random(seed);
            var encoding = new UpdateRingEncoding(bits + 2, (float)bound, n, d);
            var mask = (1u << encoding.RingBits) - 1;
            var sum = new uint[d + 1];
            var truth = new double[d];
            for (var c = 0; c < n; c++)
            {
                var delta = new float[d];
                for (var i = 0; i < d; i++) delta[i] = (float)(0.4 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
                for (var i = 0; i < d; i++) truth[i] += weights[c] * delta[i] / totalWeight;
                var ring = UpdateEncoding.Encode(delta, weights[c], encoding, random);
                for (var i = 0; i <= d; i++) sum[i] = (sum[i] + ring[i]) & mask;
            }
            var (mean, total) = UpdateEncoding.Decode(sum, encoding);
            Assert.InRange(total, totalWeight - 0.1, totalWeight + 0.1);
            return Math.Sqrt(truth.Select((t, i) => (mean[i] - t) * (mean[i] - t)).Average());
        }
        for (var seed = 0; seed < 10; seed++)
        {
            var before = Error(8, 25 * 1.01, seed);
            var now = Error(7, RoundCoordinator.CoordinateBound(25, 0, d), seed);
            Assert.True(now < 0.75 * before, $"seed {seed}: rms error {now:F4} in 7 bits over the narrow range, {before:F4} in 8 bits over S");
        }
    }

    private sealed class Messages : IRoundMessageSource
    {
        public Dictionary<int, AdvertiseKeysMessage> A { get; } = [];
        public Dictionary<int, ShareKeysMessage> S { get; } = [];
        public Dictionary<int, MaskedInputMessage> M { get; } = [];
        public Dictionary<int, UnmaskResponse> U { get; } = [];
        public AdvertiseKeysMessage? AdvertiseKeys(int id) => A.GetValueOrDefault(id);
        public ShareKeysMessage? ShareKeys(int id) => S.GetValueOrDefault(id);
        public MaskedInputMessage? MaskedInput(int id) => M.GetValueOrDefault(id);
        public UnmaskResponse? Unmasking(int id) => U.GetValueOrDefault(id);
    }

    [Fact]
    public void Closing_phases_by_replaying_stored_messages_recovers_a_dropout_and_repeats_itself_exactly()
    {
        var ids = new[] { 1, 2, 3, 4, 5 };
        var p = new SecureAggregationOptions { RingBits = 16 }.RoundParameters(ids, 20);
        var random = new Random(4);
        var inputs = ids.ToDictionary(i => i, _ => Enumerable.Range(0, 20).Select(_ => (uint)random.Next(0, 1 << 16)).ToArray());
        var clients = ids.ToDictionary(i => i, i => new SecAggClient(p, i));
        try
        {
            var messages = new Messages();
            var arrivals = StageArrivals.Empty;
            foreach (var i in ids) messages.A[i] = clients[i].AdvertiseKeys();
            arrivals = arrivals.With(RoundPhase.AdvertiseKeys, ids);
            var a = RoundCoordinator.ClosePhase(p, RoundPhase.AdvertiseKeys, arrivals, messages);
            Assert.Equal(ids, a.Next);
            foreach (var i in ids) messages.S[i] = clients[i].ShareKeys(a.Keys![i]);
            arrivals = arrivals.With(RoundPhase.ShareKeys, ids);
            var s = RoundCoordinator.ClosePhase(p, RoundPhase.ShareKeys, arrivals, messages);
            int[] survivors = [1, 2, 4, 5];   // client 3 shared its keys, then went silent
            foreach (var i in survivors) messages.M[i] = clients[i].MaskInput(s.Shares![i], inputs[i]);
            arrivals = arrivals.With(RoundPhase.MaskedInput, survivors);
            var m = RoundCoordinator.ClosePhase(p, RoundPhase.MaskedInput, arrivals, messages);
            Assert.Equal(survivors, m.Next);
            Assert.Equal([3], m.Dropped);
            Assert.Equal([3], m.Unmask!.Dropped);
            foreach (var i in survivors) messages.U[i] = clients[i].Unmask(m.Unmask);
            arrivals = arrivals.With(RoundPhase.Unmasking, survivors);
            var u = RoundCoordinator.ClosePhase(p, RoundPhase.Unmasking, arrivals, messages);
            Assert.Null(u.AbortReason);
            var expected = new uint[20];
            foreach (var i in survivors) for (var k = 0; k < 20; k++) expected[k] = (expected[k] + inputs[i][k]) & 0xFFFF;
            Assert.Equal(expected, u.Result!.Sum);

            // An activity retried with the same arrivals computes the same outputs.
            var again = RoundCoordinator.ClosePhase(p, RoundPhase.ShareKeys, arrivals, messages);
            foreach (var i in ids) Assert.Equal(s.Shares![i].Shares.Select(x => Convert.ToHexString(x.Ciphertext)), again.Shares![i].Shares.Select(x => Convert.ToHexString(x.Ciphertext)));
            Assert.Equal(u.Result.Sum, RoundCoordinator.ClosePhase(p, RoundPhase.Unmasking, arrivals, messages).Result!.Sum);

            // Too few unmask answers: the server refuses to unmask rather than guess.
            var starved = RoundCoordinator.ClosePhase(p, RoundPhase.Unmasking, arrivals.With(RoundPhase.Unmasking, [1]), messages);
            Assert.NotNull(starved.AbortReason);
            Assert.Null(starved.Result);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    [Fact]
    public void A_malformed_stored_message_excludes_its_sender()
    {
        var ids = new[] { 1, 2, 3 };
        var p = new SecureAggregationOptions { RingBits = 16 }.RoundParameters(ids, 4);
        var clients = ids.ToDictionary(i => i, i => new SecAggClient(p, i));
        try
        {
            var messages = new Messages();
            foreach (var i in ids) messages.A[i] = clients[i].AdvertiseKeys();
            messages.A[2] = messages.A[2] with { MaskingPublicKey = new byte[33] };
            var a = RoundCoordinator.ClosePhase(p, RoundPhase.AdvertiseKeys, StageArrivals.Empty.With(RoundPhase.AdvertiseKeys, ids), messages);
            Assert.Equal([1, 3], a.Next);
            Assert.Equal(2, Assert.Single(a.Exclusions).ClientId);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    private static RoundPlan PlanFor(bool secure, int parameters, double clip = 0.5, double noise = 0)
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3, SecureAggregation = new FederationSecureAggregation { Enabled = secure } };
        return new RoundPlan
        {
            Federation = "unit", Round = 1, Config = config, Selected = [new("a", 1), new("b", 2), new("c", 3), new("d", 4), new("e", 5)], Population = 5,
            Stages = [], BaseVersion = "v0", Fit = new FitConfig(1, 1, 0.01, 0, 1, clip, noise, true),
            Encoding = secure ? new UpdateRingEncoding(32, (float)(clip + 6 * noise), 5, parameters) : null,
            StatisticsColumns = [], SamplingRate = 1, CentralNoiseStd = 0, MinSurvivors = 3, CreatedAt = DateTimeOffset.UnixEpoch, StartedBy = "t",
        };
    }

    [Fact]
    public void Under_secure_aggregation_an_unclipped_contribution_breaks_the_norm_bound_and_the_version_is_held_back()
    {
        const int n = 40;
        var plan = PlanFor(secure: true, n);
        var random = new Random(5);
        float[] Honest() { var d = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray(); GaussianMechanism.ClipL2(d, 0.5); return d; }
        uint[] Sum(IEnumerable<float[]> updates)
        {
            var sum = new uint[n + 1];
            foreach (var u in updates) { var e = UpdateEncoding.Encode(u, 1, plan.Encoding!, random); for (var i = 0; i <= n; i++) sum[i] = unchecked(sum[i] + e[i]); }
            return sum;
        }
        var baseline = new float[n];
        var honest = RoundCoordinator.AggregateSecure(plan, baseline, new SecAggResult(Sum(Enumerable.Range(0, 5).Select(_ => Honest())), [1, 2, 3, 4, 5], []));
        Assert.Null(honest.NormViolation);
        Assert.True(honest.Metrics["updateNorm"] <= 0.5);

        // The attacker sets every coordinate to the ring's bound (it skipped clipping): norm 0.5 * sqrt(40) per client.
        var attack = Enumerable.Repeat(0.5f, n).ToArray();
        var poisoned = RoundCoordinator.AggregateSecure(plan, baseline, new SecAggResult(Sum(Enumerable.Range(0, 4).Select(_ => Honest()).Append(attack)), [1, 2, 3, 4, 5], []));
        Assert.NotNull(poisoned.NormViolation);
        Assert.Equal(baseline, poisoned.Parameters);   // nothing applied
        var (passed, reason) = RoundCoordinator.Gate(new FederationPromotion(), poisoned.NormViolation, 0.9, 0.5);
        Assert.False(passed);
        Assert.Contains("did not clip", reason);
    }

    [Fact]
    public void With_visible_updates_a_scaled_attacker_is_flagged_and_the_rest_are_clipped_and_averaged()
    {
        const int n = 30;
        var plan = PlanFor(secure: false, n, clip: 1.0);
        var random = new Random(8);
        var direction = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var updates = new List<(string, byte[], int)>();
        for (var k = 0; k < 5; k++)
        {
            var u = direction.Select(x => x * 0.3f + (float)(random.NextDouble() - 0.5) * 0.05f).ToArray();
            updates.Add(($"h{k}", UpdateFrame.EncodeDense(u), 100));
        }
        updates.Add(("attacker", UpdateFrame.EncodeDense(direction.Select(x => x * -30f).ToArray()), 100));
        updates.Add(("garbage", [1, 2, 3], 100));
        var outcome = RoundCoordinator.AggregatePlain(plan, new float[n], updates, new Random(1));
        Assert.Contains(outcome.Excluded, e => e.ClientId == "attacker" && e.Reason.StartsWith("anomaly detector", StringComparison.Ordinal));
        Assert.Contains(outcome.Excluded, e => e.ClientId == "garbage" && e.Reason.StartsWith("update frame", StringComparison.Ordinal));
        Assert.Equal(5, outcome.Contributors);
        Assert.True(outcome.Metrics["updateNorm"] <= 1.0 + 1e-6);
        var cosine = Serverless.Federation.Aggregation.Aggregators.Cosine(outcome.Parameters, direction);
        Assert.True(cosine > 0.9, $"cosine {cosine}");
    }

    [Fact]
    public void The_gate_compares_hold_out_auroc_within_the_allowed_drop()
    {
        var promotion = new FederationPromotion { MaxAurocDrop = 0.02 };
        Assert.True(RoundCoordinator.Gate(promotion, null, 0.70, 0.71).Passed);
        Assert.False(RoundCoordinator.Gate(promotion, null, 0.68, 0.71).Passed);
        Assert.True(RoundCoordinator.Gate(promotion, null, null, 0.71).Passed);
        Assert.True(RoundCoordinator.Gate(promotion, null, 0.5, null).Passed);
        Assert.False(RoundCoordinator.Gate(promotion, null, double.NaN, 0.7).Passed);
    }

    [Fact]
    public void Under_central_DP_nothing_is_screened_out_on_the_data_and_each_update_only_counts_up_to_the_clip()
    {
        const int n = 30;
        const double clip = 1.0, noise = 0.1;
        var plan = PlanFor(secure: false, n, clip) with { CentralNoiseStd = noise };
        var random = new Random(8);
        var direction = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var deltas = new List<float[]>();
        for (var k = 0; k < 5; k++) deltas.Add(direction.Select(x => x * 0.3f + (float)(random.NextDouble() - 0.5) * 0.05f).ToArray());
        deltas.Add(direction.Select(x => x * -30f).ToArray());   // the screen would drop this one (see the test above)
        var updates = deltas.Select((d, k) => ($"h{k}", UpdateFrame.EncodeDense(d), 100)).ToList();

        var outcome = RoundCoordinator.AggregatePlain(plan, new float[n], updates, new Random(1));
        Assert.DoesNotContain(outcome.Excluded, e => e.Reason.StartsWith("anomaly detector", StringComparison.Ordinal));
        Assert.Equal(6, outcome.Contributors);
        Assert.Equal(0, outcome.Metrics["screened"]);
        Assert.False(outcome.Metrics.ContainsKey("flagged"));

        // Exactly the clipped sum plus the noise, over the contributors: each update moved the sum by at most S.
        var sum = new double[n];
        foreach (var d in deltas)
        {
            var c = (float[])d.Clone();
            GaussianMechanism.ClipL2(c, clip);
            for (var i = 0; i < n; i++) sum[i] += c[i];
        }
        var noisy = sum.Select(x => (float)x).ToArray();
        GaussianMechanism.AddGaussianNoise(noisy, noise, new Random(1));
        for (var i = 0; i < n; i++) Assert.Equal(noisy[i] / 6.0, outcome.Parameters[i], 1e-5);
    }

    [Fact]
    public void Fixed_size_selection_is_charged_without_the_Poisson_amplification_it_does_not_have()
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3, ClientsPerRound = 3, Privacy = new FederationPrivacy { EpsilonBudget = 50, NoiseMultiplier = 1.0 } };
        var plan = RoundCoordinator.Plan(State(30, config), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        Assert.Equal(3, plan.Selected.Length);
        Assert.Equal(1.0, plan.SamplingRate);
        var charged = RoundCoordinator.Charge(State(30, config) with { PreprocessorJson = "{}", CurrentVersion = "v0" },
            RoundCoordinator.Plan(State(30, config) with { PreprocessorJson = "{}", CurrentVersion = "v0" }, 1, DateTimeOffset.UnixEpoch, "test", new Random(1))).EpsilonSpent;
        Assert.Equal(new PrivacyBudget(50, 1e-5).EpsilonAfter(1.0, 1.0), charged, 12);
        Assert.True(charged > new PrivacyBudget(50, 1e-5).EpsilonAfter(0.1, 1.0), "no amplification is claimed for 3 of 30");
    }
}
