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

    [Fact]
    public void Windows_pooled_across_instances_or_restored_after_a_restart_report_as_one_window_that_saw_every_event()
    {
        var rng = new Random(17);
        var reference = Enumerable.Range(0, 2000).Select(_ => (float)rng.NextDouble()).ToArray();
        var rows = Enumerable.Range(0, 1500).Select(i => (float)(rng.NextDouble() * (i % 3 == 0 ? 2 : 1))).ToArray();
        PsiMonitor New() => new(["x"], reference, minimumObservations: 100);
        var one = New();
        foreach (var v in rows) one.Observe([v]);
        var a = New();
        var b = New();
        for (var i = 0; i < rows.Length; i++) (i % 5 == 0 ? a : b).Observe([rows[i]]);

        var pooled = a.Report([b.Counts()]);
        Assert.Equal(rows.Length, pooled.Observations);
        Assert.Equal(one.Report().Features[0].Psi, pooled.Features[0].Psi, 12);
        Assert.Equal(one.Report().Alert, pooled.Alert);
        Assert.NotEqual(one.Report().Features[0].Psi, a.Report().Features[0].Psi, 3);   // one instance alone sees another sample

        var restarted = New();
        restarted.Add(a.Counts());
        restarted.Add(b.Counts());
        Assert.Equal(one.Report().Features[0].Psi, restarted.Report().Features[0].Psi, 12);
        Assert.Equal(rows.Length, restarted.Observations);
    }

    [Fact]
    public void Counts_that_do_not_fit_the_reference_are_refused_and_change_nothing()
    {
        var reference = Enumerable.Range(0, 1000).Select(i => (float)i).ToArray();
        var monitor = new PsiMonitor(["x"], reference);
        monitor.Observe([3f]);
        var good = monitor.Counts();
        var bins = good.Bins[0].Length;
        DriftCounts[] bad =
        [
            new(1, []),                                            // no features
            new(1, [new long[bins - 1]]),                          // a bin short
            good with { Observations = 2 },                        // the bins do not add up
            new(-1, [Enumerable.Repeat(0L, bins - 1).Append(-1).ToArray()]),   // negative
        ];
        Assert.True(monitor.Fits(good));
        Assert.False(monitor.Fits(null));
        foreach (var counts in bad)
        {
            Assert.False(monitor.Fits(counts));
            Assert.Throws<ArgumentException>(() => monitor.Add(counts));
            Assert.Throws<ArgumentException>(() => monitor.Report([counts]));
        }
        Assert.Equal(1, monitor.Observations);
        Assert.Equal(good.Bins[0], monitor.Counts().Bins[0]);
    }
}
