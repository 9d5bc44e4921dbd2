using Serverless.Federation.Privacy;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Preprocessing;
using Serverless.Privacy.DifferentialPrivacy;

namespace Serverless.Federation.Tests.Rounds;

// Issue 20, High 2 (decision 0023): the statistics stage released exact per-feature counts, sums and sums of squares, with
// no DP and no budget charge; with two hospitals each learnt the other's exact means and variances.
public sealed class StatisticsPrivacyTests
{
    private static readonly Lazy<string> CertificatePem = new(() =>
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=unit", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddYears(100));
        return cert.ExportCertificatePem();
    });

    private static FederationState State(int clients, FederationConfig config) => new()
    {
        Config = config,
        Clients = Enumerable.Range(1, clients).Select(i => new EnrolledClient($"hospital-{i}", i, new string('a', 64), DateTimeOffset.UnixEpoch, CertificatePem.Value)).ToArray(),
    };

    private static FederationConfig TwoHospitals(bool privacy = true) => new()
    {
        Id = "two-hospitals",
        MinClients = 2,
        Privacy = privacy ? new FederationPrivacy() : new FederationPrivacy { Enabled = false, ClipNorm = 0 },
    };

    private static readonly Lazy<GeneratedCohort> Cohort = new(() => CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 300, Seed = 23 }));

    private static IReadOnlyList<PatientRecord> Hospital(int index) => Cohort.Value.Hospitals[index].Patients;

    private static uint[] RingSum(params uint[][] inputs)
    {
        var sum = new uint[inputs[0].Length];
        foreach (var input in inputs)
            for (var i = 0; i < sum.Length; i++) sum[i] = unchecked(sum[i] + input[i]);
        return sum;
    }

    private static uint[] RingDifference(uint[] a, uint[] b)
    {
        var d = new uint[a.Length];
        for (var i = 0; i < d.Length; i++) d[i] = unchecked(a[i] - b[i]);
        return d;
    }

    [Fact]
    public void Today_the_exact_statistics_let_one_hospital_recover_the_others_exact_means()
    {
        // The path privacy-off federations still take, which was every federation's path before: exact FeatureSums.
        var plan = RoundCoordinator.Plan(State(2, TwoHospitals(privacy: false)), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        Assert.Null(plan.StatisticsPrivacy);
        var a = StatisticsEncoding.Encode(FeatureSums.Accumulate(CohortGenerator.Schema, Hospital(0)));
        var b = StatisticsEncoding.Encode(FeatureSums.Accumulate(CohortGenerator.Schema, Hospital(1)));
        var released = RoundCoordinator.PreprocessorFromSum(plan, RingSum(a, b)).Statistics;
        // Hospital 1 reads the preprocessor it is given and removes its own part.
        var own = FeatureStatistics.FromSums(FeatureSums.Accumulate(CohortGenerator.Schema, Hospital(0)));
        var truth = FeatureStatistics.FromSums(FeatureSums.Accumulate(CohortGenerator.Schema, Hospital(1)));
        for (var c = 0; c < released.Columns.Count; c++)
        {
            var recovered = (released.Counts[c] * released.Means[c] - own.Counts[c] * own.Means[c]) / (released.Counts[c] - own.Counts[c]);
            Assert.Equal(truth.Means[c], recovered, 1e-3 * Math.Max(1, Math.Abs(truth.Means[c])));
        }
    }

    [Fact]
    public void A_hospital_colluding_with_the_server_no_longer_recovers_the_others_mean()
    {
        // The strongest two-hospital attack: hospital 1 and the server see the noised sum, and hospital 1 knows its own input,
        // noise included, exactly. What is left is hospital 2's contributions plus hospital 2's noise share alone, and that share
        // carries the full calibrated std (sized for t - 1 = 1 colluder).
        var plan = RoundCoordinator.Plan(State(2, TwoHospitals()), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        var mechanism = plan.StatisticsPrivacy!;
        var threshold = plan.StageOf(RoundStages.Statistics)!.Parameters!.Threshold;
        Assert.Equal(2, threshold);
        var truth = mechanism.Release(plan.StatisticsColumns, mechanism.Contributions(CohortGenerator.Schema, Hospital(1)));
        var columns = plan.StatisticsColumns.Length;
        const int trials = 60;
        var close = 0;
        // One generator for every draw: System.Random's seeded generators with adjacent seeds give correlated streams.
        var rng = new Random(20);
        for (var trial = 0; trial < trials; trial++)
        {
            var a = mechanism.ClientInput(CohortGenerator.Schema, Hospital(0), threshold, RoundCoordinator.StatisticsFractionBits, rng);
            var b = mechanism.ClientInput(CohortGenerator.Schema, Hospital(1), threshold, RoundCoordinator.StatisticsFractionBits, rng);
            var leftOver = StatisticsEncoding.Decode(RingDifference(RingSum(a, b), a));
            var recovered = mechanism.Release(plan.StatisticsColumns, leftOver);
            for (var c = 0; c < columns; c++)
            {
                var width = mechanism.Ranges[c].Upper - mechanism.Ranges[c].Lower;
                if (Math.Abs(recovered.Means[c] - truth.Means[c]) <= 1e-3 * width) close++;
            }
        }
        // The mean of about 300 patients moves by std ~ z sqrt(3 d) / 300 ~ 0.07 of the half-range: within 0.1 % of the range
        // in about 3 % of the (column, trial) pairs; the exact path was within 1e-3 of the value itself in all of them.
        Assert.InRange(close, 0, trials * columns / 10);
    }

    [Fact]
    public void The_released_sums_differ_from_the_bounded_sums_by_noise_of_the_calibrated_std()
    {
        var plan = RoundCoordinator.Plan(State(2, TwoHospitals()), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        var mechanism = plan.StatisticsPrivacy!;
        var threshold = plan.StageOf(RoundStages.Statistics)!.Parameters!.Threshold;
        Assert.Equal(10, mechanism.Ranges.Length);
        Assert.Equal(4.0 * Math.Sqrt(30), mechanism.TargetStd, 12);   // z = 4, d = 10 numeric columns
        Assert.Equal(mechanism.TargetStd, mechanism.ClientStd(threshold), 12);
        var exact = mechanism.Contributions(CohortGenerator.Schema, Hospital(0)).Zip(mechanism.Contributions(CohortGenerator.Schema, Hospital(1)), (x, y) => x + y).ToArray();
        double sum = 0, sumSq = 0;
        long n = 0;
        var rng = new Random(23);
        for (var trial = 0; trial < 200; trial++)
        {
            var a = mechanism.ClientInput(CohortGenerator.Schema, Hospital(0), threshold, RoundCoordinator.StatisticsFractionBits, rng);
            var b = mechanism.ClientInput(CohortGenerator.Schema, Hospital(1), threshold, RoundCoordinator.StatisticsFractionBits, rng);
            var released = StatisticsEncoding.Decode(RingSum(a, b));
            for (var i = 0; i < exact.Length; i++)
            {
                var e = released[i] - exact[i];
                sum += e;
                sumSq += e * e;
                n++;
            }
        }
        var mean = sum / n;
        var std = Math.Sqrt(sumSq / n - mean * mean);
        var expected = Math.Sqrt(2) * mechanism.TargetStd;   // two honest shares, each of the full std
        Assert.InRange(std, 0.95 * expected, 1.05 * expected);
        Assert.InRange(mean, -0.1 * expected, 0.1 * expected);

        // The preprocessor built from one noised release still standardizes: each mean is off by about the sum's noise over the
        // patient count, std sqrt(2) z sqrt(3 d) / 600 ~ 5 % of the half-range here (a tenth of that at 6,000 patients); 5 std allowed.
        var a1 = mechanism.ClientInput(CohortGenerator.Schema, Hospital(0), threshold, RoundCoordinator.StatisticsFractionBits, new Random(5));
        var b1 = mechanism.ClientInput(CohortGenerator.Schema, Hospital(1), threshold, RoundCoordinator.StatisticsFractionBits, new Random(6));
        var preprocessor = RoundCoordinator.PreprocessorFromSum(plan, RingSum(a1, b1));
        var pooled = mechanism.Release(plan.StatisticsColumns, exact);
        for (var c = 0; c < exact.Length / 3; c++)
        {
            var half = (mechanism.Ranges[c].Upper - mechanism.Ranges[c].Lower) / 2;
            Assert.Equal(pooled.Means[c], preprocessor.Statistics.Means[c], 5 * expected / pooled.Counts[c] * half * 2);
            Assert.True(preprocessor.Statistics.StandardDeviations[c] > 0);
        }
    }

    [Fact]
    public void Adding_or_removing_one_patient_moves_the_contributions_by_at_most_the_sensitivity()
    {
        var mechanism = StatisticsMechanism.Of(new FederationPrivacy(), CohortGenerator.Schema.NumericColumns())!;
        var patients = Hospital(0).Take(60).ToList();
        // Extreme patients: values far outside the ranges, infinities, and a patient with nothing observed.
        double[] Row(int n, Func<double> value) => Enumerable.Range(0, n).Select(_ => value()).ToArray();
        var extremes = new[]
        {
            new PatientRecord("x1", "h", [1e12, 0, 0, 1e12, 1e12], [Row(7, () => 1e12), Row(7, () => double.PositiveInfinity)], 1),
            new PatientRecord("x2", "h", [double.NegativeInfinity, 1, 2, -5, -5], [Row(7, () => -1e300)], 0),
            new PatientRecord("x3", "h", [double.NaN, 0, 0, double.NaN, double.NaN], [Row(7, () => double.NaN)], 0),
        };
        var candidates = patients.Take(20).Concat(extremes).ToList();
        var bound = mechanism.L2Sensitivity;
        var with = mechanism.Contributions(CohortGenerator.Schema, patients.Concat(extremes));
        foreach (var p in candidates)
        {
            var without = mechanism.Contributions(CohortGenerator.Schema, patients.Concat(extremes).Where(x => !ReferenceEquals(x, p)));
            var distance = Math.Sqrt(with.Zip(without, (x, y) => (x - y) * (x - y)).Sum());
            Assert.True(distance <= bound + 1e-9, $"one patient moved the vector by {distance} > {bound}");
            if (p.PatientId == "x1") Assert.Equal(bound, distance, 9);   // every column at its upper bound: count, u and u^2 all 1
            if (p.PatientId == "x3") Assert.Equal(0, distance);          // nothing observed: nothing contributed
        }
        Assert.True(with.All(double.IsFinite));
    }

    [Fact]
    public void The_release_is_the_patient_weighted_mean_and_sd_of_the_clipped_values()
    {
        var schema = new FeatureSchema([new FeatureSpec("age", FeatureKind.Numeric)], [new FeatureSpec("glucose", FeatureKind.Numeric)], ["no", "yes"]);
        var mechanism = StatisticsMechanism.Of(new FederationPrivacy(), schema.NumericColumns())!;
        Assert.Equal(new StatisticsRange(18, 100), mechanism.Ranges[0]);
        var patients = new[]
        {
            new PatientRecord("p1", "h", [30], [[100], [120]], 0),
            new PatientRecord("p2", "h", [50], [[double.NaN], [200]], 1),
            new PatientRecord("p3", "h", [double.NaN], [[9000]], 1),   // glucose clipped to 500; age not observed
        };
        var released = mechanism.Release(schema.NumericColumns(), mechanism.Contributions(schema, patients));
        Assert.Equal(40, released.Means[0], 9);
        Assert.Equal(10, released.StandardDeviations[0], 9);
        Assert.Equal(2, released.Counts[0]);
        // Glucose: p1 counts its two visits with weight 1/2 each, p2 and p3 (clipped to 500) one each.
        var weights = new[] { 0.5, 0.5, 1, 1 };
        var values = new[] { 100.0, 120, 200, 500 };
        var mean = weights.Zip(values, (w, v) => w * v).Sum() / 3;
        var variance = weights.Zip(values, (w, v) => w * v * v).Sum() / 3 - mean * mean;
        Assert.Equal(mean, released.Means[1], 9);
        Assert.Equal(Math.Sqrt(variance), released.StandardDeviations[1], 9);
        Assert.Equal(3, released.Counts[1]);
        // A count the noise took below 1 says nothing: the midpoint of the range and the sd of a uniform over it.
        var empty = mechanism.Release(schema.NumericColumns(), [0.4, -3, 0.1, 0.2, 0.3, 0.4]);
        Assert.Equal(59, empty.Means[0], 9);
        Assert.Equal(41 / Math.Sqrt(3), empty.StandardDeviations[0], 9);
        Assert.Equal(0, empty.Counts[1]);
    }

    [Fact]
    public void A_private_plan_carries_the_mechanism_to_the_clients_and_refuses_columns_without_a_public_range()
    {
        var plan = RoundCoordinator.Plan(State(3, new FederationConfig { Id = "unit", MinClients = 3 }), 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        var mechanism = plan.StatisticsPrivacy!;
        Assert.Equal(plan.StatisticsColumns.Select(c => StatisticsMechanism.DefaultRanges[c]), mechanism.Ranges);
        Assert.Equal(4.0, mechanism.NoiseMultiplier);
        var task = RoundCoordinator.StatisticsTaskOf(plan);
        Assert.Same(mechanism, task.Privacy);
        Assert.Equal(plan.StatisticsColumns, task.Columns);
        Assert.Equal(RoundCoordinator.StatisticsFractionBits, task.FractionBits);
        // The task survives the wire.
        var back = System.Text.Json.JsonSerializer.Deserialize<StatisticsTask>(System.Text.Json.JsonSerializer.Serialize(task, RoundJson.Options), RoundJson.Options)!;
        Assert.Equal(mechanism.Ranges, back.Privacy!.Validated().Ranges);

        var schema = new FeatureSchema([new FeatureSpec("lactate", FeatureKind.Numeric)], [new FeatureSpec("glucose", FeatureKind.Numeric)], ["no", "yes"]);
        var custom = new FederationConfig { Id = "unit", MinClients = 3, Schema = schema };
        Assert.Contains(FederationRules.Validate(custom), e => e.Field == "privacy.statisticsRanges" && e.Message.Contains("lactate"));
        var refused = Assert.Throws<RoundRefusedException>(() => RoundCoordinator.Plan(State(3, custom), 1, DateTimeOffset.UnixEpoch, "test", new Random(1)));
        Assert.Equal("Statistics without public ranges", refused.Title);
        var ranged = custom with { Privacy = custom.Privacy with { StatisticsRanges = new() { ["lactate"] = new StatisticsRange(0, 30) } } };
        Assert.Empty(FederationRules.Validate(ranged));
        Assert.Equal([new StatisticsRange(0, 30), new StatisticsRange(40, 500)], RoundCoordinator.Plan(State(3, ranged), 1, DateTimeOffset.UnixEpoch, "test", new Random(1)).StatisticsPrivacy!.Ranges);
        var bad = ranged with { Privacy = ranged.Privacy with { StatisticsNoiseMultiplier = 0, StatisticsRanges = new() { ["lactate"] = new StatisticsRange(5, 5) } } };
        var errors = FederationRules.Validate(bad).Select(e => e.Field).ToArray();
        Assert.Contains("privacy.statisticsNoiseMultiplier", errors);
        Assert.Contains("privacy.statisticsRanges", errors);
        // With privacy off nothing changes: no ranges needed, exact sums.
        var off = custom with { Privacy = new FederationPrivacy { Enabled = false, ClipNorm = 0 } };
        Assert.Empty(FederationRules.Validate(off));
        Assert.Null(RoundCoordinator.Plan(State(3, off), 1, DateTimeOffset.UnixEpoch, "test", new Random(1)).StatisticsPrivacy);
        Assert.Null(RoundCoordinator.StatisticsTaskOf(RoundCoordinator.Plan(State(3, off), 1, DateTimeOffset.UnixEpoch, "test", new Random(1))).Privacy);
    }

    [Fact]
    public void The_statistics_release_is_charged_once_and_composes_with_the_training_round()
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3 };
        var state = State(3, config);
        var plan = RoundCoordinator.Plan(state, 1, DateTimeOffset.UnixEpoch, "test", new Random(1));
        Assert.Equal(0, state.EpsilonSpent);
        var afterStatistics = RoundCoordinator.ChargeStatistics(state, plan);
        var reference = new PrivacyBudget(config.Privacy.EpsilonBudget, config.Privacy.Delta);
        Assert.Equal(reference.EpsilonAfter(1.0, config.Privacy.StatisticsNoiseMultiplier), afterStatistics.EpsilonSpent, 12);
        Assert.True(afterStatistics.EpsilonSpent > 0);
        Assert.Equal([1], afterStatistics.AccountedStatistics);
        Assert.Same(afterStatistics, RoundCoordinator.ChargeStatistics(afterStatistics, plan));   // a retried close charges nothing
        var afterRound = RoundCoordinator.Charge(afterStatistics, plan);
        var both = reference.EpsilonAfter([(1.0, config.Privacy.StatisticsNoiseMultiplier), (plan.SamplingRate, config.Privacy.NoiseMultiplier)]);
        Assert.Equal(both, afterRound.EpsilonSpent, 12);
        Assert.Equal(2, afterRound.Accountant!.Steps);
        // A commit that was never preceded by the statistics charge still pays for the release (no release goes uncharged).
        Assert.Equal(both, RoundCoordinator.Charge(state, plan).EpsilonSpent, 12);
        // A round that gathers no statistics, and a federation without privacy, charge no statistics step.
        var trained = state with { PreprocessorJson = "{}", CurrentVersion = "v0" };
        var trainingOnly = RoundCoordinator.Plan(trained, 2, DateTimeOffset.UnixEpoch, "test", new Random(1));
        Assert.Same(trained, RoundCoordinator.ChargeStatistics(trained, trainingOnly));
        var off = State(3, config with { Privacy = new FederationPrivacy { Enabled = false, ClipNorm = 0 } });
        Assert.Same(off, RoundCoordinator.ChargeStatistics(off, RoundCoordinator.Plan(off, 1, DateTimeOffset.UnixEpoch, "test", new Random(1))));
    }

    [Fact]
    public void Lowering_the_statistics_noise_after_spending_is_a_loosening()
    {
        var config = new FederationConfig { Id = "unit", MinClients = 3 };
        var state = State(3, config);
        var spent = RoundCoordinator.ChargeStatistics(state, RoundCoordinator.Plan(state, 1, DateTimeOffset.UnixEpoch, "test", new Random(1)));
        Assert.True(PrivacySettingsRules.IsLocked(spent));
        var loosened = PrivacySettingsRules.Loosenings(spent, config.Privacy with { StatisticsNoiseMultiplier = 1 });
        Assert.Contains(loosened, e => e.Field == "privacy.statisticsNoiseMultiplier");
        Assert.Empty(PrivacySettingsRules.Loosenings(spent, config.Privacy with { StatisticsNoiseMultiplier = 8 }));
        Assert.Empty(PrivacySettingsRules.Loosenings(state, config.Privacy with { StatisticsNoiseMultiplier = 1 }));   // nothing spent yet
    }
}
