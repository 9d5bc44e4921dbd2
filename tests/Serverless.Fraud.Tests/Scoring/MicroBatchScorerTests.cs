using System.Text.Json;
using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Model.Nn;

namespace Serverless.Fraud.Tests.Scoring;

public sealed class MicroBatchScorerTests
{
    private const int K = 6;
    private static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    private static FraudModel Random(string version, int seed, ArchitectureKind arch = ArchitectureKind.CnnLstm)
    {
        var config = FraudModels.Sequence(K) with { Architecture = arch };
        return new FraudModel(version, config, new CnnLstm(config).InitializeParameters(seed));
    }

    private static IReadOnlyList<Transaction> Stream(int seed = 2, int cards = 300) =>
        StreamGenerator.Generate(new StreamOptions { Banks = 2, CardsPerBank = cards, Days = 2, Seed = seed }).Transactions;

    [Fact]
    public void Every_event_gets_both_versions_scores_and_alerts_carry_version_and_explanation()
    {
        var stream = Stream();
        using var tokenizer = new CardTokenizer(Key);
        var options = new ScorerOptions { Champion = Random("v1", 1), Challenger = Random("v2", 2), ChallengerFraction = 0.3, Threshold = 0.0001 };
        using var scorer = new MicroBatchScorer(options, tokenizer, new InMemoryCardHistoryStore(K));
        var result = scorer.Score(stream.Take(700).ToList());
        Assert.Equal(700, result.Scores.Count);
        Assert.Empty(result.Rejected);
        Assert.All(result.Scores, s =>
        {
            Assert.Equal("v1", s.ChampionVersion);
            Assert.Equal("v2", s.ChallengerVersion);
            Assert.NotNull(s.ChallengerScore);
            Assert.Equal(s.ServedVersion == "v2" ? s.ChallengerScore!.Value : s.ChampionScore, s.ServedScore);
            Assert.NotEqual(s.ChampionScore, s.ChallengerScore!.Value);
        });
        Assert.Contains(result.Scores, s => s.ServedVersion == "v1");
        Assert.Contains(result.Scores, s => s.ServedVersion == "v2");
        Assert.Equal(result.Scores.Count(s => s.Alerted), result.Alerts.Count);
        Assert.All(result.Alerts, a =>
        {
            Assert.Contains(a.ModelVersion, new[] { "v1", "v2" });
            Assert.NotEqual(a.ModelVersion, a.OtherVersion);
            Assert.Equal(EventFeatures.Count, a.Explanation.Features.Count);
            Assert.Equal(K, a.Explanation.Steps.Count);
            Assert.Equal(Math.Log(a.Score / (1 - a.Score)), a.Explanation.LogOdds, 3);
        });
    }

    [Theory]
    [InlineData(ScoringRuntime.OnnxRuntime)]
    [InlineData(ScoringRuntime.CSharp)]
    public void Scores_match_a_plain_forward_pass_over_the_same_windows(ScoringRuntime runtime)
    {
        var stream = Stream().Take(400).ToList();
        using var tokenizer = new CardTokenizer(Key);
        var model = Random("v1", 5);
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = model, Runtime = runtime }, tokenizer, new InMemoryCardHistoryStore(K));
        // Micro-batches of uneven sizes, one card's events spread across them.
        var scored = new List<float>();
        for (var i = 0; i < stream.Count; i += 37)
            scored.AddRange(scorer.Score(stream.Skip(i).Take(37).ToList()).Scores.Select(s => s.ServedScore));
        var data = FraudDatasets.Build(stream, tokenizer, K).Data;
        var expected = new CnnLstm(model.Config).Predict(model.Parameters, data);
        Assert.Equal(expected.Length, scored.Count);
        for (var i = 0; i < expected.Length; i++) Assert.Equal(expected[i], scored[i], 5);
    }

    [Fact]
    public void Canary_routing_is_stable_per_card_and_sends_the_configured_share()
    {
        using var tokenizer = new CardTokenizer(Key);
        var router = new CanaryRouter(0.1, "exp-1");
        var again = new CanaryRouter(0.1, "exp-1");
        var other = new CanaryRouter(0.1, "exp-2");
        var cards = Enumerable.Range(0, 20_000).Select(i => tokenizer.Tokenize(StreamGenerator.CardNumber(0, i))).ToList();
        var chosen = cards.Count(router.ToChallenger);
        Assert.InRange(chosen, 1_800, 2_200);
        Assert.All(cards, c => Assert.Equal(router.ToChallenger(c), again.ToChallenger(c)));
        var overlap = cards.Count(c => router.ToChallenger(c) && other.ToChallenger(c));
        Assert.InRange(overlap, 100, 300); // independent experiments: about 1 % of cards in both

        // Through the scorer: a card is served by one version in every batch, in a fresh scorer too.
        var stream = Stream();
        var options = new ScorerOptions { Champion = Random("v1", 1), Challenger = Random("v2", 2), ChallengerFraction = 0.5 };
        var served = new Dictionary<CardToken, string>();
        for (var run = 0; run < 2; run++)
        {
            using var scorer = new MicroBatchScorer(options, tokenizer, new InMemoryCardHistoryStore(K));
            foreach (var chunk in stream.Chunk(128))
            foreach (var s in scorer.Score(chunk).Scores)
            {
                if (served.TryGetValue(s.Card, out var v)) Assert.Equal(v, s.ServedVersion);
                else served[s.Card] = s.ServedVersion;
            }
        }
        Assert.InRange(served.Values.Count(v => v == "v2") / (double)served.Count, 0.4, 0.6);
    }

    [Fact]
    public void Malformed_transactions_are_refused_with_a_reason_and_nothing_is_lost()
    {
        var good = Stream().Take(10).ToList();
        var batch = new List<Transaction>(good)
        {
            good[0] with { CardNumber = "4111111111111112" },                      // Luhn
            good[1] with { Amount = double.NaN },
            good[2] with { Amount = -5 },
            good[3] with { LocationX = 7 },
            good[4] with { Kind = TransactionKind.Transfer, Direction = 0 },
            good[5] with { CardNumber = "" },
            good[6] with { Category = (MerchantCategory)42 },
        };
        using var tokenizer = new CardTokenizer(Key);
        var store = new InMemoryCardHistoryStore(K);
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = Random("v1", 1) }, tokenizer, store);
        var result = scorer.Score(batch);
        Assert.Equal(10, result.Scores.Count);
        Assert.Equal(Enumerable.Range(10, 7), result.Rejected.Select(r => r.Index));
        Assert.Equal(batch.Count, result.Scores.Count + result.Rejected.Count);
        Assert.Contains("Luhn", result.Rejected[0].Reason);
        Assert.Contains("amount", result.Rejected[1].Reason);
        Assert.All(result.Rejected, r => Assert.DoesNotContain("411111", r.Reason));
        // A refused event never reaches the history.
        Assert.Equal(good.Select(t => t.CardNumber).Distinct().Count(), store.Count);
    }

    [Fact]
    public void No_card_number_appears_in_scores_alerts_rejections_or_the_store()
    {
        var stream = Stream().Take(500).ToList();
        using var tokenizer = new CardTokenizer(Key);
        var store = new InMemoryCardHistoryStore(K);
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = Random("v1", 1), Challenger = Random("v2", 3), Threshold = 0.0001 }, tokenizer, store);
        var bad = stream[0] with { CardNumber = stream[0].CardNumber[..15] + "0" };
        var result = scorer.Score([.. stream, bad]);
        Assert.NotEmpty(result.Alerts);
        Assert.Single(result.Rejected);
        var json = JsonSerializer.Serialize(new { result.Scores, result.Alerts, result.Rejected, Cards = store.Cards.Select(c => c.ToString()) },
            new JsonSerializerOptions { Converters = { new TokenConverter() } });
        var text = json + string.Join("\n", result.Scores.Select(s => s.ToString())) + string.Join("\n", result.Alerts.Select(a => a.ToString()));
        foreach (var pan in stream.Select(t => t.CardNumber).Distinct())
        {
            Assert.DoesNotContain(pan, text);
            Assert.DoesNotContain(pan[6..], text); // no tail of it either (last 10 digits)
        }
    }

    private sealed class TokenConverter : System.Text.Json.Serialization.JsonConverter<CardToken>
    {
        public override CardToken Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => CardToken.Parse(reader.GetString()!);
        public override void Write(Utf8JsonWriter writer, CardToken value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
    }
}
