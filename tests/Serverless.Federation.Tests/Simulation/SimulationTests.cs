using Serverless.Federation.Aggregation;
using Serverless.Federation.Privacy;
using Serverless.Federation.SecureAggregation;
using Serverless.Federation.Simulation;
using Serverless.Federation.Strategies;
using Xunit.Abstractions;

namespace Serverless.Federation.Tests.Simulation;

/// <summary>Four hospitals of 1,000 generated patients each, a small CNN-LSTM (921 parameters): built once for the class.</summary>
public sealed class FourHospitalsFixture
{
    public HospitalFederation Federation { get; } = new(new HospitalFederationOptions { Hospitals = 4, PatientsPerHospital = 1000, Width = 8 });
}

public sealed class SimulationTests(FourHospitalsFixture fixture, ITestOutputHelper output) : IClassFixture<FourHospitalsFixture>
{
    private HospitalFederation Fed => fixture.Federation;

    [Fact]
    public void FedProx_over_four_non_iid_hospitals_is_within_one_AUROC_point_of_central_training()
    {
        var central = Fed.PooledAuroc(Fed.TrainCentral(maxEpochs: 40, learningRate: 0.01));
        var sim = new FederatedSimulator(FedAvg.FedProx(0.01, new FedAvgOptions { LocalEpochs = 2, LearningRate = 0.01 }), Fed.Clients(), new SimulationOptions { Rounds = 40 });
        var result = sim.Run(Fed.InitialParameters());
        var federated = Fed.PooledAuroc(result.BestParameters);
        output.WriteLine($"central {central:F4} federated {federated:F4} (best round {result.BestRound})");
        Assert.True(central > 0.7, $"central AUROC {central}");
        Assert.InRange(federated - central, -0.01, 1);
    }

    [Fact]
    public void Secure_aggregation_gives_the_same_model_as_plain_aggregation_up_to_fixed_point_error()
    {
        var strategy = () => new FedAvg(new FedAvgOptions { LocalEpochs = 1, LearningRate = 0.01, FractionEvaluate = 0 });
        var plain = new FederatedSimulator(strategy(), Fed.Clients(), new SimulationOptions { Rounds = 3, ParallelClients = false }).Run(Fed.InitialParameters());
        var secure = new FederatedSimulator(strategy(), Fed.Clients(), new SimulationOptions { Rounds = 3, ParallelClients = false, SecureAggregation = new SecureAggregationOptions { RingBits = 32, ClipRange = 4 } })
            .Run(Fed.InitialParameters());
        var maxDiff = plain.Parameters.Zip(secure.Parameters, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(maxDiff < 1e-3, $"max difference {maxDiff}");
        Assert.All(secure.Rounds, r => Assert.Equal(4, r.Aggregated.Count));
        Assert.All(secure.Rounds, r => Assert.True(r.BytesSentPerClient > 4 * 922));
    }

    [Fact]
    public void Dropouts_under_secure_aggregation_leave_out_only_the_dropped_inputs()
    {
        var sim = new FederatedSimulator(new FedAvg(new FedAvgOptions { LocalEpochs = 1, FractionEvaluate = 0 }),
            new HospitalFederation(new HospitalFederationOptions { Hospitals = 8, PatientsPerHospital = 100, Width = 4 }).Clients(),
            new SimulationOptions { Rounds = 4, DropoutRate = 0.2, Seed = 3, SecureAggregation = new SecureAggregationOptions { RingBits = 24, ThresholdFraction = 0.4 } });
        var fed8 = new HospitalFederation(new HospitalFederationOptions { Hospitals = 8, PatientsPerHospital = 100, Width = 4 });
        var result = sim.Run(fed8.InitialParameters());
        Assert.Contains(result.Rounds, r => r.Dropped.Count > 0);
        foreach (var r in result.Rounds.Where(r => !r.Rejected))
            Assert.True(r.Aggregated.Count >= 8 - r.Dropped.Count);
    }

    [Fact]
    public void Distributed_DP_under_secure_aggregation_spends_the_budget_then_refuses()
    {
        var z = DifferentialPrivacyStrategy.CalibrateNoise(epsilon: 3, delta: 1e-5, q: 1, rounds: 3);
        var dp = new DifferentialPrivacyStrategy(new FedAvg(new FedAvgOptions { LocalEpochs = 1, FractionEvaluate = 0 }),
            new DpOptions(ClipNorm: 0.5, NoiseMultiplier: z, NoisePlacement.Distributed, MinSurvivors: 4, Delta: 1e-5, EpsilonMax: 3.0001), population: 4, new Random(1));
        var sim = new FederatedSimulator(dp, Fed.Clients(), new SimulationOptions { Rounds = 10, SecureAggregation = new SecureAggregationOptions { RingBits = 32 } });
        var result = sim.Run(Fed.InitialParameters());
        Assert.Equal(3, result.Rounds.Count);
        Assert.NotNull(result.StoppedBecause);
        var eps = result.Rounds.Select(r => r.Epsilon!.Value).ToArray();
        Assert.True(eps[0] < eps[1] && eps[1] < eps[2]);
        Assert.InRange(eps[2], 2.99, 3.0001);
    }

    [Theory]
    [InlineData(AttackKind.SignFlip, 1.0, 0.6)]
    [InlineData(AttackKind.Scaling, 10.0, 0.9)]
    [InlineData(AttackKind.LabelFlip, 1.0, 0.5)]
    [InlineData(AttackKind.RandomNoise, 3.0, 0.9)]
    public void Poisoning_attacks_are_detected_at_the_stated_rate(AttackKind kind, double factor, double minDetectionRate)
    {
        // 10 hospitals, 2 attackers, 5 rounds: 10 attacker updates and 40 honest ones.
        var fed = new HospitalFederation(new HospitalFederationOptions { Hospitals = 10, PatientsPerHospital = 200, Width = 8, Seed = 7, Heterogeneity = 0.5 });
        var attackers = new Dictionary<int, (AttackKind, double)> { [0] = (kind, factor), [5] = (kind, factor) };
        var strategy = new FedAvg(new FedAvgOptions { LocalEpochs = 1, FractionEvaluate = 0, AnomalyFilter = new AnomalyOptions() });
        var result = new FederatedSimulator(strategy, fed.Clients(attackers), new SimulationOptions { Rounds = 5 }).Run(fed.InitialParameters());
        string[] bad = [fed.Data.Hospitals[0].Hospital, fed.Data.Hospitals[5].Hospital];
        var detected = result.Rounds.Sum(r => r.Excluded.Count(e => bad.Contains(e.ClientId))) / 10.0;
        var falseAlarms = result.Rounds.Sum(r => r.Excluded.Count(e => !bad.Contains(e.ClientId))) / 40.0;
        output.WriteLine($"{kind}: detection {detected:P0}, false alarms {falseAlarms:P0}");
        Assert.True(detected >= minDetectionRate, $"{kind}: detected {detected:P0} < {minDetectionRate:P0}");
        Assert.True(falseAlarms <= 0.15, $"{kind}: false alarms {falseAlarms:P0}");
        Assert.All(result.Rounds.SelectMany(r => r.Excluded), e => Assert.False(string.IsNullOrWhiteSpace(e.Reason)));
    }

    [Fact]
    public void Under_secure_aggregation_the_validation_gate_rejects_a_model_replacement_round()
    {
        var attackers = new Dictionary<int, (AttackKind, double)> { [2] = (AttackKind.SignFlip, 30.0) };
        var sim = new FederatedSimulator(new FedAvg(new FedAvgOptions { LocalEpochs = 1, FractionEvaluate = 0 }), Fed.Clients(attackers),
            new SimulationOptions
            {
                Rounds = 3, SecureAggregation = new SecureAggregationOptions { ClipRange = 64 },
                Gate = new ValidationGate(Fed.PooledAuroc, MaxDrop: 0.02),
            });
        var initial = Fed.TrainCentral(maxEpochs: 5, learningRate: 0.01);   // a model worth protecting
        var result = sim.Run(initial);
        Assert.Contains(result.Rounds, r => r.Rejected && r.RejectionReason!.Contains("hold-out"));
        Assert.True(Fed.PooledAuroc(result.Parameters) >= Fed.PooledAuroc(initial) - 0.02);
    }

    [Fact]
    public void Enforced_client_clipping_bounds_a_scaled_update_under_secure_aggregation()
    {
        var attackers = new Dictionary<int, (AttackKind, double)> { [1] = (AttackKind.Scaling, 100.0) };
        var sim = new FederatedSimulator(new FedAvg(new FedAvgOptions { LocalEpochs = 1, FractionEvaluate = 0, ClientClipNorm = 0.5 }), Fed.Clients(attackers),
            new SimulationOptions { Rounds = 1, SecureAggregation = new SecureAggregationOptions() });
        var initial = Fed.InitialParameters();
        var result = sim.Run(initial);
        var step = Aggregators.Norm(result.Parameters.Zip(initial, (a, b) => a - b).ToArray());
        Assert.True(step <= 0.5 + 1e-3, $"aggregate step {step}");
    }

    [Fact]
    public void Eight_bit_quantized_updates_cut_bytes_and_still_learn()
    {
        var sim = new FederatedSimulator(new FedAvg(new FedAvgOptions { LocalEpochs = 2, FractionEvaluate = 0 }), Fed.Clients(),
            new SimulationOptions { Rounds = 5, Compression = new CompressionOptions(QuantizationBits: 8), Monitor = Fed.PooledAuroc });
        var result = sim.Run(Fed.InitialParameters());
        Assert.All(result.Rounds, r => Assert.True(r.BytesSentPerClient < 0.4 * r.BytesPlainPerClient, $"{r.BytesSentPerClient} vs {r.BytesPlainPerClient}"));
        Assert.True(result.Rounds[^1].Score > 0.62, $"AUROC {result.Rounds[^1].Score}");
    }
}
