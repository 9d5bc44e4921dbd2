using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Model.Nn;

namespace Serverless.Fraud.Tests.Scoring;

public sealed class PsiMonitorTests
{
    private const int K = 4;

    /// <summary>Current-step features of every event whose card is (or is not) in the first half of the token space.</summary>
    private static float[] LastSteps(IReadOnlyList<Transaction> stream, CardTokenizer tokenizer, bool firstHalf)
    {
        return FraudDatasets.LatestSteps(FraudDatasets.Build(stream, tokenizer, K, include: (_, c) => c.Bucket < 0.5 == firstHalf).Data);
    }

    private static IReadOnlyList<Transaction> Stream() =>
        StreamGenerator.Generate(new StreamOptions { Banks = 3, CardsPerBank = 400, Days = 3, Seed = 9 }).Transactions;

    [Fact]
    public void Silent_on_an_unshifted_stream()
    {
        using var tokenizer = new CardTokenizer(new byte[32]);
        var stream = Stream();
        var monitor = new PsiMonitor(EventFeatures.Names, LastSteps(stream, tokenizer, firstHalf: true));
        var current = LastSteps(stream, tokenizer, firstHalf: false); // other cards, same banks and patterns
        for (var i = 0; i < current.Length; i += EventFeatures.Count) monitor.Observe(current.AsSpan(i, EventFeatures.Count));
        var report = monitor.Report();
        Assert.True(report.Observations > 5_000);
        Assert.False(report.Alert, string.Join(", ", report.Alerts.Select(a => $"{a.Feature}={a.Psi:F3}")));
        Assert.All(report.Features, f => Assert.True(f.Psi < 0.1, $"{f.Feature} PSI {f.Psi:F3}"));
    }

    [Fact]
    public void Fires_on_the_shifted_feature_of_a_shifted_stream_through_the_scorer()
    {
        using var tokenizer = new CardTokenizer(new byte[32]);
        var stream = Stream();
        var monitor = new PsiMonitor(EventFeatures.Names, LastSteps(stream, tokenizer, firstHalf: true));
        // Amounts three times larger (a currency or pricing change); everything else as before.
        var shifted = stream.Where(t => tokenizer.Tokenize(t.CardNumber).Bucket >= 0.5).Select(t => t with { Amount = Math.Round(t.Amount * 3, 2) }).ToList();
        var config = FraudModels.Sequence(K);
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = new FraudModel("v1", config, new CnnLstm(config).InitializeParameters(1)) },
            tokenizer, new InMemoryCardHistoryStore(K), monitor);
        foreach (var chunk in shifted.Chunk(256)) scorer.Score(chunk);
        var report = monitor.Report();
        Assert.Equal(shifted.Count, report.Observations);
        Assert.True(report.Alert);
        var amount = report.Features.Single(f => f.Feature == "log_amount");
        Assert.True(amount.Alert, $"log_amount PSI {amount.Psi:F3}");
        Assert.DoesNotContain(report.Alerts, a => a.Feature is "location_x" or "hour_sin" or "card_age");

        monitor.Reset();
        Assert.Equal(0, monitor.Observations);
        Assert.False(monitor.Report().Alert);
    }

    [Fact]
    public void Psi_matches_the_formula_on_a_hand_computed_case()
    {
        // Reference: values 0..9 once each -> deciles, each bin 10 %. Current: all mass in the first bin.
        var reference = Enumerable.Range(0, 10).Select(i => (float)i).ToArray();
        var monitor = new PsiMonitor(["x"], reference, bins: 10, minimumObservations: 1);
        for (var i = 0; i < 100; i++) monitor.Observe([0f]);
        // One bin: (1 - 0.1) ln(1 / 0.1); nine bins: (1e-4 - 0.1) ln(1e-4 / 0.1).
        var expected = 0.9 * Math.Log(10) + 9 * (1e-4 - 0.1) * Math.Log(1e-4 / 0.1);
        Assert.Equal(expected, monitor.Report().Features[0].Psi, 6);
    }

    [Fact]
    public void A_small_sample_never_alerts_however_skewed()
    {
        var reference = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        var monitor = new PsiMonitor(["x"], reference, minimumObservations: 500);
        for (var i = 0; i < 499; i++) monitor.Observe([5000f]);
        Assert.True(monitor.Report().Features[0].Psi > 1);
        Assert.False(monitor.Report().Alert);
        monitor.Observe([5000f]);
        Assert.True(monitor.Report().Alert);
    }
}
