using Serverless.Federation.Aggregation;
using Serverless.Federation.Strategies;

namespace Serverless.Federation.Tests.Strategies;

public sealed class FedAvgTests
{
    [Fact]
    public void Aggregates_deltas_weighted_by_examples_and_excludes_malformed_updates()
    {
        var fedAvg = new FedAvg();
        float[] global = [1, 1];
        var result = fedAvg.AggregateRound(1, global,
        [
            new FitResult("a", [1, 0], 10),
            new FitResult("b", [0, 1], 30),
            new FitResult("c", [float.NaN, 0], 10),
            new FitResult("d", [1], 10),
        ]);
        Assert.Equal([1.25f, 1.75f], result.Parameters);
        Assert.Equal(["c", "d"], result.Excluded.Select(e => e.ClientId));
    }

    [Fact]
    public void FedProx_sends_mu_and_sampling_is_deterministic()
    {
        var clients = Enumerable.Range(0, 10).Select(i => $"c{i}").ToArray();
        var a = FedAvg.FedProx(0.1, new FedAvgOptions { FractionFit = 0.3, Seed = 4 });
        var b = FedAvg.FedProx(0.1, new FedAvgOptions { FractionFit = 0.3, Seed = 4 });
        var ia = a.ConfigureRound(2, [0f], clients);
        var ib = b.ConfigureRound(2, [0f], clients);
        Assert.Equal(3, ia.Count);
        Assert.Equal(ia.Select(i => i.ClientId), ib.Select(i => i.ClientId));
        Assert.Equal(ia.Select(i => i.Config.Seed), ib.Select(i => i.Config.Seed));
        Assert.All(ia, i => Assert.Equal(0.1, i.Config.ProximalMu));
        Assert.Throws<InvalidOperationException>(() => new FedAvg(new FedAvgOptions { MinFitClients = 20 }).ConfigureRound(1, [0f], clients));
    }

    [Fact]
    public void Robust_strategy_with_anomaly_filter_records_the_reason()
    {
        var strategy = new FedAvg(new FedAvgOptions { Aggregator = AggregatorKind.CoordinateMedian, AnomalyFilter = new AnomalyOptions() });
        var honest = Enumerable.Range(0, 5).Select(i => new FitResult($"h{i}", [1f + 0.01f * i, 1f, 1f], 10));
        var result = strategy.AggregateRound(1, [0f, 0f, 0f], [.. honest, new FitResult("evil", [-50f, -50f, -50f], 10)]);
        var ex = Assert.Single(result.Excluded);
        Assert.Equal("evil", ex.ClientId);
        Assert.Contains("norm", ex.Reason);
        Assert.InRange(result.Parameters[0], 1f, 1.04f);
    }

    [Fact]
    public void Evaluation_is_weighted_by_examples()
    {
        var s = new FedAvg().AggregateEvaluation(1, [new EvaluateResult("a", 10, 1.0, new Dictionary<string, double> { ["auroc"] = 0.5 }), new EvaluateResult("b", 30, 2.0, new Dictionary<string, double> { ["auroc"] = 0.9 })]);
        Assert.Equal(1.75, s.Loss, 12);
        Assert.Equal(0.8, s.Metrics["auroc"], 12);
    }
}
