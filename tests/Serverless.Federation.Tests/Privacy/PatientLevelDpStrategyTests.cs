using Serverless.Federation.Privacy;
using Serverless.Federation.SecureAggregation;
using Serverless.Federation.Simulation;
using Serverless.Federation.Strategies;
using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Federation.Tests.Privacy;

/// <summary>Patient-level DP (DP-SGD in each hospital) over a tiny federation: accounting, refusal, reported epsilon.</summary>
public sealed class PatientLevelDpStrategyTests
{
    private static readonly HospitalFederation Fed = new(new HospitalFederationOptions { Hospitals = 3, PatientsPerHospital = 60, Width = 4, Visits = 6 });

    /// <summary>Counts the fits a client was asked for and keeps what it reported.</summary>
    private sealed class Recording(IFederatedClient inner) : IFederatedClient
    {
        public List<FitResult> Fits { get; } = [];
        public string Id => inner.Id;
        public FitResult Fit(FitInstruction instruction)
        {
            var r = inner.Fit(instruction);
            lock (Fits) Fits.Add(r);
            return r;
        }
        public EvaluateResult Evaluate(EvaluateInstruction instruction) => inner.Evaluate(instruction);
    }

    private static PatientDpOptions Options(double epsilonMax = 50) => new(ClipNorm: 1, NoiseMultiplier: 1.1, ExpectedBatchSize: 8, Delta: 1e-4, EpsilonMax: epsilonMax);

    private static IStrategy Inner() => new FedAvg(new FedAvgOptions { LocalEpochs = 2, LearningRate = 0.01, FractionEvaluate = 0 });

    [Fact]
    public void The_accountant_charges_every_sampled_batch_and_the_round_reports_its_epsilon()
    {
        var clients = Fed.Clients().Select(c => new Recording(c)).ToArray();
        var records = Fed.TrainingRecords();
        var dp = new PatientLevelDpStrategy(Inner(), Options(), records);
        var result = new FederatedSimulator(dp, clients, new SimulationOptions { Rounds = 2, ParallelClients = false }).Run(Fed.InitialParameters());
        Assert.Null(result.StoppedBecause);
        Assert.Equal(2, result.Rounds.Count);

        foreach (var c in clients)
        {
            // The steps the trainer actually took (one per Poisson-sampled batch) are the steps charged.
            var taken = c.Fits.Sum(f => (long)f.Metrics!["dp_steps"]);
            Assert.Equal(2 * DpSgdOptions.PlannedSteps(8, records[c.Id], 2), taken);
            Assert.Equal(taken, dp.Budgets[c.Id].StepsSpent);
            Assert.DoesNotContain("train_loss", c.Fits[0].Metrics!.Keys);
        }

        // The epsilon in the round report is the accountant's: the largest hospital's, recomputed here from scratch.
        var expected = records.Max(kv => SampledGaussianRdp.Epsilon(DpSgdOptions.SamplingRate(8, kv.Value), 1.1, dp.Budgets[kv.Key].StepsSpent, 1e-4));
        Assert.Equal(dp.EpsilonSpent, result.Rounds[^1].Epsilon);
        Assert.Equal(expected, result.Rounds[^1].Epsilon!.Value, 9);
        Assert.True(result.Rounds[0].Epsilon < result.Rounds[1].Epsilon);
    }

    [Fact]
    public void A_round_that_would_exceed_the_per_patient_budget_is_refused_before_anyone_trains()
    {
        var records = Fed.TrainingRecords();
        var steps = DpSgdOptions.PlannedSteps(8, records.Values.Min(), 2);
        // A budget that pays for exactly one round of the smallest hospital (the one with the largest q).
        var oneRound = records.Max(kv => SampledGaussianRdp.Epsilon(DpSgdOptions.SamplingRate(8, kv.Value), 1.1, DpSgdOptions.PlannedSteps(8, kv.Value, 2), 1e-4));
        var clients = Fed.Clients().Select(c => new Recording(c)).ToArray();
        var dp = new PatientLevelDpStrategy(Inner(), Options(epsilonMax: oneRound * 1.05), records);
        var result = new FederatedSimulator(dp, clients, new SimulationOptions { Rounds = 3, ParallelClients = false }).Run(Fed.InitialParameters());
        Assert.Single(result.Rounds);
        Assert.Contains("refused", result.StoppedBecause);
        Assert.All(clients, c => Assert.Single(c.Fits));   // round 2 never reached local training
        Assert.True(dp.EpsilonSpent <= oneRound * 1.05);
        Assert.True(steps > 0);
    }

    [Fact]
    public void Secure_aggregation_is_unchanged_and_still_charges_the_accountant()
    {
        var dp = new PatientLevelDpStrategy(Inner(), Options(), Fed.TrainingRecords());
        var result = new FederatedSimulator(dp, Fed.Clients(), new SimulationOptions { Rounds = 1, ParallelClients = false, SecureAggregation = new SecureAggregationOptions { RingBits = 32, ClipRange = 4 } })
            .Run(Fed.InitialParameters());
        Assert.Null(result.StoppedBecause);
        Assert.Equal(dp.EpsilonSpent, result.Rounds[0].Epsilon);
        Assert.All(dp.Budgets.Values, b => Assert.True(b.StepsSpent > 0));
    }

    [Fact]
    public void A_delta_not_below_one_over_records_is_refused()
    {
        var records = new Dictionary<string, int> { ["a"] = 1000, ["b"] = 50 };
        var e = Assert.Throws<ArgumentException>(() => new PatientLevelDpStrategy(Inner(), Options() with { Delta = 0.005 }, records));
        Assert.Contains("hospital a", e.Message);   // the larger hospital sets the bound: 0.005 < 1/50 but not < 1/1000
    }

    [Fact]
    public void Per_hospital_noise_gives_every_hospitals_patients_the_target_epsilon_and_larger_hospitals_less_noise()
    {
        var records = Fed.TrainingRecords();
        const int Rounds = 2;
        var noise = PatientLevelDpStrategy.CalibrateNoisePerHospital(4, 1e-4, 8, 2, Rounds, records);
        var byRecords = records.OrderBy(kv => kv.Value).Select(kv => noise[kv.Key]).ToArray();
        Assert.True(byRecords[0] > byRecords[^1], "the smallest hospital samples at the largest rate and needs the most noise");

        var clients = Fed.Clients().Select(c => new Recording(c)).ToArray();
        var dp = new PatientLevelDpStrategy(Inner(), Options(epsilonMax: 4 * (1 + 1e-6)) with { NoiseMultiplier = noise.Values.Max() }, records, noise);
        var instructions = dp.ConfigureRound(1, Fed.InitialParameters(), records.Keys.ToArray());
        Assert.All(instructions, i => Assert.Equal(noise[i.ClientId], i.Config.DpSgd!.NoiseMultiplier));
        var result = new FederatedSimulator(dp, clients, new SimulationOptions { Rounds = Rounds, ParallelClients = false }).Run(Fed.InitialParameters());
        Assert.Null(result.StoppedBecause);
        foreach (var (id, n) in records)
        {
            // Each accountant charged its own hospital's sigma, and each spent (just under) the whole budget.
            var expected = SampledGaussianRdp.Epsilon(DpSgdOptions.SamplingRate(8, n), noise[id], Rounds * DpSgdOptions.PlannedSteps(8, n, 2), 1e-4);
            Assert.Equal(expected, dp.Budgets[id].EpsilonSpent, 9);
            Assert.InRange(dp.Budgets[id].EpsilonSpent, 3.95, 4.0);
        }
        Assert.Throws<ArgumentException>(() => new PatientLevelDpStrategy(Inner(), Options(), records, new Dictionary<string, double> { [records.Keys.First()] = 1.0 }));
    }

    [Fact]
    public void Calibrated_noise_spends_the_target_epsilon()
    {
        var z = PatientLevelDpStrategy.CalibrateNoise(epsilon: 3, delta: 1e-5, q: 0.05, steps: 400);
        Assert.InRange(SampledGaussianRdp.Epsilon(0.05, z, 400, 1e-5), 2.99, 3.0);
    }
}
