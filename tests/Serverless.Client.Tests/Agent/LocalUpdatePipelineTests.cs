using Serverless.Client.Agent;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Preprocessing;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Client.Tests.Agent;

/// <summary>The agent's local work: statistics, training, clipping, its noise share, the attack flag, encodings.</summary>
public sealed class LocalUpdatePipelineTests
{
    private static readonly GeneratedCohort Cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 60, Visits = 5, Seed = 11 });
    private static readonly PatientCohort Local = new(Cohort.Schema, Cohort.Hospitals[0].Patients);
    private static readonly Preprocessor Pre = Preprocessor.Fit(Cohort.Schema, Cohort.All().Patients, steps: 5);
    private static readonly ModelConfig Config = new() { Features = Pre.Features, Steps = 5, ConvChannels = 4, LstmHidden = 4 };
    private static readonly float[] Global = new CnnLstm(Config).InitializeParameters(seed: 2);

    private static LocalTrainingPlan Plan(double clip = 0, double noise = 0) => new(Round: 1, LocalEpochs: 1, LearningRate: 0.05, ProximalMu: 0.01, BatchSize: 16, Seed: 5, clip, noise);

    [Fact]
    public void The_agents_noise_floor_refuses_a_share_below_z_times_the_clip_norm_and_an_unclipped_task()
    {
        // The server's plan for 5 clients (t = 4, 3 colluders allowed for): a share of the whole z * S passes a floor at z.
        var std = GaussianMechanism.DistributedStd(1.0, 0.5, 4, colluding: 3);
        Serverless.Federation.Strategies.FitConfig Fit(double clip, double noise) => new(1, 1, 0.05, 0, 1, clip, noise);
        Assert.Null(FederationAgent.BelowNoiseFloor(Fit(0.5, std), 1.0));
        Assert.Null(FederationAgent.BelowNoiseFloor(Fit(0.5, 0), 0));                     // no floor set
        // The honest-but-curious sizing z S / sqrt(4) would let 3 colluders leave a quarter of the variance: refused.
        var why = FederationAgent.BelowNoiseFloor(Fit(0.5, GaussianMechanism.DistributedStd(1.0, 0.5, 4)), 1.0);
        Assert.Contains("below this agent's floor z = 1", why);
        Assert.Contains("does not clip", FederationAgent.BelowNoiseFloor(Fit(0, 10), 1.0));
        Assert.NotNull(FederationAgent.BelowNoiseFloor(Fit(0.5, double.NaN), 1.0));
    }

    [Fact]
    public void Patient_mode_trains_with_dp_sgd_charges_its_own_account_and_refuses_a_round_beyond_the_budget_before_training()
    {
        var dir = Directory.CreateTempSubdirectory("patient-dp-").FullName;
        try
        {
            var settings = new PatientPrivacySettings(ClipNorm: 1, NoiseMultiplier: 1.0, ExpectedBatchSize: 8, Delta: 1e-5, EpsilonBudget: 100);
            var records = Local.Patients.Count;
            var steps = Serverless.Model.Training.DpSgdOptions.PlannedSteps(8, records, 1);
            var perRound = SampledGaussianRdp.Epsilon(Serverless.Model.Training.DpSgdOptions.SamplingRate(8, records), 1.0, steps, 1e-5);
            // A budget that pays for one round and not two.
            settings = settings with { EpsilonBudget = perRound * 1.2 };
            var pipeline = new LocalUpdatePipeline(Local, patientPrivacy: PatientPrivacy.Open(settings, dir));
            var first = pipeline.Train(Config, Pre, Global, Plan(), new Random(1));
            Assert.Equal(perRound, first.PatientEpsilon!.Value, 9);
            Assert.Equal(steps, pipeline.PatientPrivacy!.StepsSpent);

            // The account survives a restart, and the second round is refused before any training.
            var reopened = new LocalUpdatePipeline(Local, patientPrivacy: PatientPrivacy.Open(settings, dir));
            Assert.Equal(steps, reopened.PatientPrivacy!.StepsSpent);
            Assert.Equal(perRound, reopened.PatientPrivacy.Budget.EpsilonSpent, 9);
            var e = Assert.Throws<InvalidDataException>(() => reopened.Train(Config, Pre, Global, Plan() with { Round = 2 }, new Random(2)));
            Assert.Contains("refused before training", e.Message);
            Assert.Equal(steps, reopened.PatientPrivacy.StepsSpent);
            Assert.Contains("per-patient epsilon", PatientPrivacy.Summary(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_statistics_vector_is_the_feature_sums_of_the_local_records()
    {
        var pipeline = new LocalUpdatePipeline(Local);
        Assert.Equal(FeatureSums.Accumulate(Cohort.Schema, Local.Patients).ToVector(), pipeline.StatisticsVector());
    }

    [Fact]
    public void Training_is_reproducible_for_a_seed_and_the_update_is_local_minus_global()
    {
        var a = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(), new Random(1));
        var b = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(), new Random(2));
        Assert.Equal(a.Delta, b.Delta);                       // no noise: the noise source is not touched
        Assert.Equal(Local.Patients.Count, a.Examples);
        Assert.True(a.NormBeforeClip > 0);
        Assert.Contains(a.Delta, d => d != 0);
    }

    [Fact]
    public void Clipping_bounds_the_update_norm_by_S()
    {
        var update = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.01), new Random(1));
        Assert.True(update.NormBeforeClip > 0.01, "the test needs an update larger than the clip");
        Assert.InRange(GaussianMechanism.Norm(update.Delta), 0.0099, 0.0100001);
    }

    [Fact]
    public void The_noise_share_has_the_requested_standard_deviation()
    {
        const double std = 0.05;
        var clean = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.5), new Random(1));
        var noisy = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.5, noise: std), new Random(7));
        var diff = clean.Delta.Zip(noisy.Delta, (c, n) => (double)n - c).ToArray();
        var mean = diff.Average();
        var sd = Math.Sqrt(diff.Sum(d => (d - mean) * (d - mean)) / (diff.Length - 1));
        // n = parameter count (hundreds): the sample sd is within 5 standard errors (sd / sqrt(2n)).
        var tolerance = 5 * std / Math.Sqrt(2.0 * diff.Length);
        Assert.InRange(sd, std - tolerance, std + tolerance);
        Assert.InRange(mean, -5 * std / Math.Sqrt(diff.Length), 5 * std / Math.Sqrt(diff.Length));
    }

    [Theory]
    [InlineData("scale:10", 10.0)]
    [InlineData("flip:3", -3.0)]
    public void An_attacker_corrupts_the_honest_clipped_update(string attack, double factor)
    {
        var honest = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.2), new Random(1));
        var corrupt = new LocalUpdatePipeline(Local, Attack.Parse(attack)).Train(Config, Pre, Global, Plan(clip: 0.2), new Random(1));
        for (var i = 0; i < honest.Delta.Length; i++) Assert.Equal(factor * honest.Delta[i], corrupt.Delta[i], 1e-6);
    }

    [Theory]
    [InlineData("scale:0")]
    [InlineData("scale:x")]
    [InlineData("boost:2")]
    [InlineData("flip:-1")]
    public void A_bad_attack_flag_is_refused(string text) => Assert.Throws<ArgumentException>(() => Attack.Parse(text));

    [Fact]
    public void A_global_model_of_the_wrong_size_or_a_bad_plan_is_refused()
    {
        var pipeline = new LocalUpdatePipeline(Local);
        Assert.Throws<InvalidDataException>(() => pipeline.Train(Config, Pre, Global[..^1], Plan(), new Random(1)));
        var nan = (float[])Global.Clone();
        nan[3] = float.NaN;
        Assert.Throws<InvalidDataException>(() => pipeline.Train(Config, Pre, nan, Plan(), new Random(1)));
        Assert.Throws<InvalidDataException>(() => pipeline.Train(Config, Pre, Global, Plan() with { LearningRate = -1 }, new Random(1)));
        Assert.Throws<InvalidDataException>(() => pipeline.Train(Config, Pre, Global, Plan(noise: double.NaN), new Random(1)));
    }

    [Fact]
    public void Ring_encodings_of_two_clients_sum_to_their_weighted_mean()
    {
        var a = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.5), new Random(1)).Delta;
        var b = new LocalUpdatePipeline(new PatientCohort(Cohort.Schema, Cohort.Hospitals[1].Patients)).Train(Config, Pre, Global, Plan(clip: 0.5), new Random(1)).Delta;
        var encoding = new UpdateRingEncoding(RingBits: 32, CoordinateBound: 0.5f, MaxClients: 4, ParameterCount: a.Length);
        var random = new Random(3);
        var ra = UpdateEncoding.Encode(a, 1.0, encoding, random);
        var rb = UpdateEncoding.Encode(b, 0.5, encoding, random);
        var sum = new uint[ra.Length];
        for (var i = 0; i < sum.Length; i++) sum[i] = ra[i] + rb[i];
        var (mean, total) = UpdateEncoding.Decode(sum, encoding);
        Assert.Equal(1.5, total, 1e-6);
        var step = 1 / UpdateEncoding.Codec(encoding).Scale;
        for (var i = 0; i < mean.Length; i++) Assert.Equal((a[i] + 0.5 * b[i]) / 1.5, mean[i], 4 * step + 1e-6);
    }

    [Fact]
    public void A_quantized_visible_update_stays_within_the_quantization_error()
    {
        var update = new LocalUpdatePipeline(Local).Train(Config, Pre, Global, Plan(clip: 0.5), new Random(1)).Delta;
        var frame = LocalUpdatePipeline.EncodeVisible(update, bits: 8, chunkSize: 256, new Random(4));
        var decoded = Serverless.Federation.Compression.UpdateFrame.DecodeToDense(frame, update.Length);
        var range = update.Max() - update.Min();
        for (var i = 0; i < update.Length; i++) Assert.InRange(decoded[i] - update[i], -range / 255.0 - 1e-6, range / 255.0 + 1e-6);
        Assert.True(frame.Length < 4 * update.Length / 2, "8-bit frames are well under half of float32");
    }

    [Fact]
    public void Statistics_encode_exactly_through_the_secure_sum_encoding()
    {
        var pipeline = new LocalUpdatePipeline(Local);
        var vector = pipeline.StatisticsVector();
        var ring = StatisticsEncoding.Encode(vector);
        var back = StatisticsEncoding.Decode(ring);
        for (var i = 0; i < vector.Length; i++) Assert.Equal(vector[i], back[i], Math.Abs(vector[i]) * 1e-9 + 1.0 / 4096);
        Assert.True(ring.All(x => x <= 0xFFFF), "limbs are 16-bit");
    }
}
