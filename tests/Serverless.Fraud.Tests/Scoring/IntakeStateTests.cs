using System.Text;
using System.Text.Json;
using Serverless.Fraud.Data;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Model.Nn;

namespace Serverless.Fraud.Tests.Scoring;

/// <summary>Intake idempotency, history that survives a crash, tokenized messages, and a hot loop that does not allocate per event.</summary>
public sealed class IntakeStateTests
{
    private const int K = 6;
    private static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)(i * 3)).ToArray();

    private static FraudModel Model(int seed = 4)
    {
        var config = FraudModels.Sequence(K);
        return new FraudModel("v1", config, new CnnLstm(config).InitializeParameters(seed));
    }

    private static (List<Transaction> Raw, List<CardEvent> Events) Stream()
    {
        var raw = StreamGenerator.Generate(new StreamOptions { Banks = 2, CardsPerBank = 120, Days = 2, Seed = 9 }).Transactions.Take(1500).ToList();
        using var tokenizer = new CardTokenizer(Key);
        return (raw, raw.Select(tokenizer.Tokenize).ToList());
    }

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("fraud-state-").FullName, "state.db");

    [Fact]
    public void A_transaction_id_seen_twice_is_scored_once_in_one_batch_and_across_batches()
    {
        var (_, events) = Stream();
        var options = new ScorerOptions { Champion = Model(), Runtime = ScoringRuntime.CSharp };
        using var reference = new MicroBatchScorer(options, new InMemoryCardHistoryStore(K));
        var expected = reference.Score(events.Take(300).ToList()).Scores.Select(s => s.ServedScore).ToArray();

        using var scorer = new MicroBatchScorer(options, new InMemoryCardHistoryStore(K));
        var first = scorer.Score(events.Take(200).ToList());
        // Redelivery: events 150..199 again, with 200..299, and event 250 twice in the same batch.
        var second = scorer.Score([.. events.Skip(150).Take(150), events[250]]);
        Assert.Empty(first.Duplicates);
        Assert.Equal(Enumerable.Range(0, 50).Append(150), second.Duplicates);
        var scored = first.Scores.Concat(second.Scores).ToList();
        Assert.Equal(events.Take(300).Select(e => e.TransactionId), scored.Select(s => s.TransactionId));
        // The duplicates did not touch the histories: every score equals the single-delivery run's.
        Assert.Equal(expected, scored.Select(s => s.ServedScore).ToArray());
    }

    [Fact]
    public void History_and_claimed_ids_survive_a_crash_between_scoring_and_commit()
    {
        var (raw, events) = Stream();
        var options = new ScorerOptions { Champion = Model(), Runtime = ScoringRuntime.CSharp };
        using var reference = new MicroBatchScorer(options, new InMemoryCardHistoryStore(K));
        var expected = reference.Score(events).Scores.ToDictionary(s => s.TransactionId, s => s.ServedScore);
        var batches = events.Chunk(100).ToList();
        var path = TempFile();
        try
        {
            var got = new Dictionary<string, float>();
            using (var store = new SqliteCardHistoryStore(path, K))
            using (var scorer = new MicroBatchScorer(options, store))
            {
                for (var b = 0; b < 8; b++)
                {
                    foreach (var s in scorer.Score(batches[b]).Scores) got[s.TransactionId] = s.ServedScore;
                    scorer.Commit();
                }
                scorer.Score(batches[8]); // scored, alerts maybe sent, then the process dies before Commit
            }

            using (var store = new SqliteCardHistoryStore(path, K))
            using (var scorer = new MicroBatchScorer(options, store))
            {
                Assert.Equal(events.Take(800).Select(e => e.Card).Distinct().Count(), store.Count);
                // The queue redelivers the last committed batch (its delete was lost too) and the uncommitted one.
                var again = scorer.Score(batches[7]);
                Assert.Empty(again.Scores);
                Assert.Equal(100, again.Duplicates.Count);
                for (var b = 8; b < batches.Count; b++)
                {
                    var r = scorer.Score(batches[b]);
                    Assert.Empty(r.Duplicates);
                    foreach (var s in r.Scores) got[s.TransactionId] = s.ServedScore;
                    scorer.Commit();
                }
            }
            Assert.Equal(expected.Count, got.Count);
            foreach (var (id, score) in expected) Assert.Equal(score, got[id]);

            // The file holds tokens, never a card number (nor its last ten digits), in any encoding a reader might try.
            SqliteCleanup();
            var bytes = File.ReadAllBytes(path).Concat(File.Exists(path + "-wal") ? File.ReadAllBytes(path + "-wal") : []).ToArray();
            var latin = Encoding.Latin1.GetString(bytes);
            var utf16 = Encoding.Unicode.GetString(bytes);
            foreach (var pan in raw.Select(t => t.CardNumber).Distinct())
            {
                Assert.DoesNotContain(pan[6..], latin);
                Assert.DoesNotContain(pan[6..], utf16);
            }
        }
        finally
        {
            SqliteCleanup();
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void A_state_file_of_another_window_length_is_refused()
    {
        var path = TempFile();
        try
        {
            using (new SqliteCardHistoryStore(path, K)) { }
            SqliteCleanup();
            var e = Assert.Throws<InvalidDataException>(() => new SqliteCardHistoryStore(path, K + 1));
            Assert.Contains("steps", e.Message);
        }
        finally
        {
            SqliteCleanup();
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void Queued_events_carry_the_token_and_round_trip_through_json_and_a_bad_token_is_refused()
    {
        var (raw, events) = Stream();
        var json = JsonSerializer.Serialize(events.Take(50).ToArray());
        foreach (var pan in raw.Take(50).Select(t => t.CardNumber)) Assert.DoesNotContain(pan[6..], json);
        var back = JsonSerializer.Deserialize<CardEvent[]>(json)!;
        Assert.Equal(events.Take(50), back);
        var bad = json.Replace(events[0].Card.ToString(), "4111111111111111");
        var error = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<CardEvent[]>(bad));
        Assert.DoesNotContain("4111", error.Message);
    }

    [Fact]
    public void A_transaction_id_that_could_be_a_card_number_is_refused_not_stored()
    {
        var (raw, events) = Stream();
        var store = new InMemoryCardHistoryStore(K);
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = Model(), Runtime = ScoringRuntime.CSharp }, store);
        var r = scorer.Score([events[0] with { TransactionId = raw[0].CardNumber }, events[1] with { TransactionId = "" }, events[2]]);
        Assert.Equal([0, 1], r.Rejected.Select(x => x.Index));
        Assert.All(r.Rejected, x => Assert.Contains("transaction id", x.Reason));
        Assert.Single(r.Scores);
        Assert.Equal(1, store.Count);
    }

    [Theory]
    [InlineData(ScoringRuntime.CSharp)]
    [InlineData(ScoringRuntime.OnnxRuntime)]
    public void Scoring_without_alerts_allocates_nothing_per_event(ScoringRuntime runtime)
    {
        var (_, events) = Stream();
        var batch = 250;
        using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = Model(), Runtime = runtime, Threshold = 1, MaxBatch = batch },
            new InMemoryCardHistoryStore(K, dedupeCapacity: 400)); // full after the warm-up: the id set then recycles its slots

        var output = new BatchOutput();
        // Warm-up: every card gets its slot and the id set fills (it then recycles its slots); the measured
        // pass replays the same cards under new ids, made before the count starts.
        var warm = events.ToArray();
        var all = events.Select(e => e with { TransactionId = "r-" + e.TransactionId }).ToArray();
        for (var i = 0; i + batch <= warm.Length; i += batch) { scorer.Score(warm.AsSpan(i, batch), output); scorer.Commit(); }
        var before = GC.GetAllocatedBytesForCurrentThread();
        var scored = 0;
        for (var i = 0; i + batch <= all.Length; i += batch)
        {
            scorer.Score(all.AsSpan(i, batch), output);
            scorer.Commit();
            scored += output.ScoreCount;
        }
        var perEvent = (GC.GetAllocatedBytesForCurrentThread() - before) / (double)scored;
        Assert.Equal(1500, scored);
        // The smallest object is 24 bytes: anything allocated per event would show as at least that much.
        // What remains is per batch (the runtime call's objects).
        Assert.True(perEvent < 16, $"{perEvent:F1} bytes per event");
    }

    private static void SqliteCleanup() => Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
}
