using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Xunit.Abstractions;

namespace Serverless.Fraud.Tests.Training;

public sealed class FraudModelsTests(ITestOutputHelper output)
{
    [Fact]
    public void Sequence_model_beats_the_baseline_on_account_takeover_which_needs_the_cards_history()
    {
        var stream = StreamGenerator.Generate(new StreamOptions
        {
            Banks = 4, CardsPerBank = 300, Days = 4, Seed = 11, FraudCardFraction = 0.2,
            Patterns = [FraudPattern.AccountTakeover, FraudPattern.CardTesting],
        }).Transactions;
        using var tokenizer = new CardTokenizer(new byte[32]);
        var train = FraudDatasets.Build(stream, tokenizer, 8, keepLegitimate: 0.5, include: (_, c) => !FraudDatasets.IsTestCard(c, 0.3));
        var test = FraudDatasets.Build(stream, tokenizer, 8, include: (_, c) => FraudDatasets.IsTestCard(c, 0.3));
        var sequence = FraudModels.Train("seq-1", FraudModels.Sequence(8), train);
        var baseline = FraudModels.Train("lr-1", FraudModels.Baseline(8), train);

        var takeover = test.PatternVersusLegitimate(FraudPattern.AccountTakeover);
        Assert.True(takeover.Data.Labels.Sum() >= 100, "enough takeover events to measure");
        var seqAuroc = FraudModels.Auroc(sequence, takeover);
        var lrAuroc = FraudModels.Auroc(baseline, takeover);
        output.WriteLine($"account takeover AUROC: sequence {seqAuroc:F3}, baseline {lrAuroc:F3}");
        Assert.True(seqAuroc >= lrAuroc + 0.05, $"sequence {seqAuroc:F3} should beat the baseline {lrAuroc:F3} by 0.05");
        Assert.True(seqAuroc > 0.9);
        // Both detect the pattern a single event shows (tiny online probes).
        Assert.True(FraudModels.Auroc(baseline, test.PatternVersusLegitimate(FraudPattern.CardTesting)) > 0.9);
    }

    [Fact]
    public void Federated_training_across_banks_with_secure_aggregation_stays_near_central_training()
    {
        // Non-IID banks (the generator's per-bank mixes); each bank trains on its own rows, the server sees masked sums only.
        var stream = StreamGenerator.Generate(new StreamOptions
        {
            Banks = 4, CardsPerBank = 200, Days = 4, Seed = 21, FraudCardFraction = 0.2,
            Patterns = [FraudPattern.AccountTakeover, FraudPattern.CardTesting, FraudPattern.VelocityAbuse],
        }).Transactions;
        using var tokenizer = new CardTokenizer(new byte[32]);
        var train = FraudDatasets.Build(stream, tokenizer, 8, keepLegitimate: 0.5, include: (_, c) => !FraudDatasets.IsTestCard(c, 0.3));
        var test = FraudDatasets.Build(stream, tokenizer, 8, include: (_, c) => FraudDatasets.IsTestCard(c, 0.3));
        Assert.Equal(4, train.Banks.Distinct().Count());
        var central = FraudModels.Auroc(FraudModels.Train("seq-central", FraudModels.Sequence(8), train), test);
        var federated = FraudModels.Auroc(FraudModels.TrainFederated("seq-federated", FraudModels.Sequence(8), train), test);
        output.WriteLine($"AUROC on held-out cards: central {central:F4}, federated with secure aggregation {federated:F4}");
        Assert.True(federated > 0.85, $"federated {federated:F4}");
        Assert.True(federated >= central - 0.03, $"federated {federated:F4} should be within 0.03 of central {central:F4}");
        Assert.Throws<ArgumentException>(() => FraudModels.TrainFederated("one-bank", FraudModels.Sequence(8), train.Subset(Enumerable.Range(0, train.Banks.Length).Where(i => train.Banks[i] == train.Banks[0]).ToArray())));
    }

    [Fact]
    public void Windows_hold_the_cards_last_k_events_oldest_first_then_padding()
    {
        var stream = StreamGenerator.Generate(new StreamOptions { Banks = 1, CardsPerBank = 20, Days = 3, Seed = 3 }).Transactions;
        using var tokenizer = new CardTokenizer(new byte[32]);
        var card = stream[0].CardNumber;
        var events = stream.Where(t => t.CardNumber == card).ToList();
        var data = FraudDatasets.Build(stream, tokenizer, 4, include: (t, _) => t.CardNumber == card).Data;
        Assert.Equal(events.Count, data.Count);
        const int f = EventFeatures.Count;
        for (var i = 0; i < data.Count; i++)
        {
            Assert.Equal(Math.Min(i + 1, 4), data.Length(i));
            // The last real step is event i: its log amount.
            var last = data.Length(i) - 1;
            Assert.Equal((float)((Math.Log(1 + events[i].Amount) - 3.5) / 1.5), data.SequenceValues(i)[last * f], 5);
            if (i > 0 && last > 0) // the step before is event i-1
                Assert.Equal((float)((Math.Log(1 + events[i - 1].Amount) - 3.5) / 1.5), data.SequenceValues(i)[(last - 1) * f], 5);
        }
        Assert.Equal(0f, data.SequenceValues(0)[f]); // padding after the first event's single step
    }

    [Fact]
    public void Precision_at_fpr_counts_only_what_is_above_the_legitimate_quantile()
    {
        // 100 legitimate scores 0..0.99, and 3 frauds at 0.995, 0.999, 0.5.
        var scores = Enumerable.Range(0, 100).Select(i => i / 100f).Concat([0.995f, 0.999f, 0.5f]).ToArray();
        var labels = Enumerable.Repeat(0, 100).Concat([1, 1, 1]).ToArray();
        // Threshold = the 99th legitimate score (0.98): above it, 0.99 (legitimate) and two frauds.
        Assert.Equal(2.0 / 3, FraudModels.PrecisionAtFalsePositiveRate(scores, labels, 0.01), 6);
    }

    [Fact]
    public void Held_out_cards_are_entirely_in_test_and_legitimate_sampling_keeps_every_fraud()
    {
        var stream = StreamGenerator.Generate(new StreamOptions { Banks = 2, CardsPerBank = 200, Days = 3, Seed = 4, FraudCardFraction = 0.2 }).Transactions;
        using var tokenizer = new CardTokenizer(new byte[32]);
        var testCards = stream.Select(t => t.CardNumber).Distinct().Where(c => FraudDatasets.IsTestCard(tokenizer.Tokenize(c), 0.3)).ToHashSet();
        Assert.InRange(testCards.Count / 400.0, 0.2, 0.4);
        var train = FraudDatasets.Build(stream, tokenizer, 4, keepLegitimate: 0.5, include: (_, c) => !FraudDatasets.IsTestCard(c, 0.3));
        var test = FraudDatasets.Build(stream, tokenizer, 4, include: (_, c) => FraudDatasets.IsTestCard(c, 0.3));
        Assert.Equal(stream.Count(t => testCards.Contains(t.CardNumber)), test.Data.Count);
        Assert.Equal(stream.Count(t => t.IsFraud && !testCards.Contains(t.CardNumber)), train.Data.Labels.Sum());
        var legitTrain = stream.Count(t => !t.IsFraud && !testCards.Contains(t.CardNumber));
        Assert.InRange(train.Data.Count - train.Data.Labels.Sum(), 0.45 * legitTrain, 0.55 * legitTrain);
        Assert.All(train.Patterns.Zip(train.Data.Labels), p => Assert.Equal(p.First != FraudPattern.None, p.Second == 1));
    }
}
