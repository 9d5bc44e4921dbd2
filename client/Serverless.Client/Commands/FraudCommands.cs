using System.Threading.Channels;
using Serverless.Fraud.Data;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;

namespace Serverless.Client.Commands;

/// <summary><c>fraud demo</c>: the fraud library end to end on the embedded defaults, in one process.</summary>
internal static class FraudCommands
{
    private const int K = 8;

    public static Command Create()
    {
        var fraud = new Command("fraud", "Real-time fraud scoring on card and transfer streams");
        fraud.Subcommands.Add(Demo());
        return fraud;
    }

    private static Command Demo()
    {
        var rate = new Option<int>("--rate") { Description = "Offered events per second for the latency run", DefaultValueFactory = _ => 5000 };
        var seconds = new Option<int>("--seconds") { Description = "Length of the latency run", DefaultValueFactory = _ => 3 };
        var seed = new Option<int>("--seed") { Description = "Stream seed", DefaultValueFactory = _ => 21 };
        var cmd = new Command("demo", "Generate streams, train the CNN-LSTM and the logistic baseline, export ONNX, score a stream through the micro-batcher; print the benchmark's table and a few alerts")
            { rate, seconds, seed };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var offered = r.GetValue(rate);
            var length = r.GetValue(seconds);
            if (offered is < 1 or > 100_000) throw new ArgumentException("--rate must be within 1..100000");
            if (length is < 1 or > 60) throw new ArgumentException("--seconds must be within 1..60");
            Run(offered, length, r.GetValue(seed));
            return 0;
        }));
        return cmd;
    }

    private static void Run(int rate, int seconds, int seed)
    {
        var total = Stopwatch.StartNew();
        var stream = StreamGenerator.Generate(new StreamOptions { Banks = 4, CardsPerBank = 500, Days = 4, Seed = seed, FraudCardFraction = 0.1 });
        // A fresh random key per run (CardTokenizer.NewKey); in the app it is a data key wrapped by the key vault.
        using var tokenizer = new CardTokenizer(CardTokenizer.NewKey());
        var train = FraudDatasets.Build(stream.Transactions, tokenizer, K, keepLegitimate: 0.3, include: (_, c) => !FraudDatasets.IsTestCard(c, 0.3));
        var test = FraudDatasets.Build(stream.Transactions, tokenizer, K, include: (_, c) => FraudDatasets.IsTestCard(c, 0.3));
        Console.WriteLine($"stream: {stream.Banks.Count} banks (non-IID), {stream.Transactions.Count} events, {stream.Transactions.Count(t => t.IsFraud)} fraud; train {train.Data.Count} windows, test {test.Data.Count} (cards held out)");

        var options = FraudModels.DefaultTraining() with { Epochs = 12 };
        var sequence = FraudModels.Train("cnnlstm-1", FraudModels.Sequence(K), train, options);
        var baseline = FraudModels.Train("logreg-1", FraudModels.Baseline(K), train, options);
        var dir = Directory.CreateTempSubdirectory("fraud-demo-").FullName;
        try
        {
            var onnxPath = Path.Combine(dir, "cnnlstm-1.onnx");
            File.WriteAllBytes(onnxPath, OnnxExporter.Export(sequence.Config, sequence.Parameters));
            using (var check = OnnxScorer.LoadFile(onnxPath))
                Console.WriteLine($"exported {Path.GetFileName(onnxPath)} ({new FileInfo(onnxPath).Length} bytes), loaded in ONNX Runtime: {check.Config.Steps} steps x {check.Config.Features} features");

            var seqScores = new CnnLstm(sequence.Config).Predict(sequence.Parameters, test.Data);
            var lrScores = new CnnLstm(baseline.Config).Predict(baseline.Parameters, test.Data);
            var legit = seqScores.Where((_, i) => test.Data.Labels[i] == 0).Order().ToArray();
            var threshold = Math.Clamp(legit[(int)Math.Ceiling(0.99 * legit.Length) - 1], 1e-6f, 1f);

            // Throughput: tokenized events through the scorer on one thread, ONNX Runtime and C#.
            var replay = stream.Transactions.Take(20_000).Select(tokenizer.Tokenize).ToArray();
            double Rate(ScoringRuntime runtime)
            {
                using var scorer = new MicroBatchScorer(new ScorerOptions { Champion = sequence, Threshold = threshold, Runtime = runtime, MaxBatch = 512 }, new InMemoryCardHistoryStore(K));
                scorer.WarmUp();
                var output = new BatchOutput();
                var sw = Stopwatch.StartNew();
                for (var i = 0; i < replay.Length; i += 512) { scorer.Score(replay.AsSpan(i, Math.Min(512, replay.Length - i)), output); scorer.Commit(); }
                return replay.Length / sw.Elapsed.TotalSeconds;
            }
            var ortRate = Rate(ScoringRuntime.OnnxRuntime);
            var csRate = Rate(ScoringRuntime.CSharp);

            var (p50, p99, achieved, alerts) = Latency(stream.Transactions, tokenizer, sequence, baseline, threshold, rate, seconds, Path.Combine(dir, "fraud-state.db"));

            Console.WriteLine();
            Console.WriteLine("| figure | value |");
            Console.WriteLine("| --- | --- |");
            Console.WriteLine($"| AUROC, CNN-LSTM / logistic (held-out cards) | {Metrics.Auroc(seqScores, test.Data.Labels):F3} / {Metrics.Auroc(lrScores, test.Data.Labels):F3} |");
            Console.WriteLine($"| precision at 1 % FPR, CNN-LSTM / logistic | {FraudModels.PrecisionAtFalsePositiveRate(seqScores, test.Data.Labels, 0.01):F3} / {FraudModels.PrecisionAtFalsePositiveRate(lrScores, test.Data.Labels, 0.01):F3} |");
            Console.WriteLine($"| scorer events/s, one thread: ONNX Runtime / C# | {ortRate:F0} / {csRate:F0} |");
            Console.WriteLine($"| enqueue -> alert p50 / p99 at {achieved:F0} events/s offered (in-process queue, SQLite card history) | {p50:F1} / {p99:F1} ms |");
            Console.WriteLine($"| load average | {File.ReadAllText("/proc/loadavg").Trim()} |");
            Console.WriteLine();
            Console.WriteLine($"alerts: {alerts.Count} at threshold {threshold:G4}; the first three, with the features that pushed the score most (log-odds, occlusion on the served model):");
            foreach (var a in alerts.Take(3))
                Console.WriteLine($"  {a.Card} {DateTimeOffset.FromUnixTimeMilliseconds(a.TimestampMs):u} amount {a.Amount:F2}: {a.ModelVersion} {a.Score:F3}" +
                    (a.OtherVersion is null ? "" : $" ({a.OtherVersion} {a.OtherScore:F3})") + "; " +
                    string.Join(", ", a.Explanation.Top(3).Select(f => $"{f.Feature} {f.LogOdds:+0.00;-0.00}")) +
                    $"; latest step {a.Explanation.Steps[LastStep(a.Explanation)]:+0.00;-0.00}");
            Console.WriteLine($"total {total.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static int LastStep(Explanation e)
    {
        var last = 0;
        for (var s = 0; s < e.Steps.Count; s++) if (e.Steps[s] != 0) last = s;
        return last;
    }

    /// <summary>
    /// A paced producer tokenizes each transaction and writes it to an in-process channel (the stand-in for
    /// the queue here; the bench measures the embedded SQLite queue); the consumer micro-batches up to 512
    /// events or 2 ms after the first one, scores, commits the SQLite card history, and records each
    /// event's enqueue-to-alert time.
    /// </summary>
    private static (double P50, double P99, double Offered, List<FraudAlert> Alerts) Latency(
        IReadOnlyList<Transaction> events, CardTokenizer tokenizer, FraudModel champion, FraudModel challenger, double threshold, int rate, int seconds, string statePath)
    {
        var count = Math.Min(events.Count, rate * seconds);
        var channel = Channel.CreateUnbounded<(long Stamp, CardEvent Event)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        using var store = new SqliteCardHistoryStore(statePath, K);
        using var scorer = new MicroBatchScorer(new ScorerOptions
        {
            Champion = champion, Challenger = challenger, ChallengerFraction = 0.1, Threshold = threshold, Runtime = ScoringRuntime.OnnxRuntime, MaxBatch = 512,
        }, store);
        scorer.WarmUp();
        var latencies = new double[count];
        var alerts = new List<FraudAlert>();
        var maxWait = 2 * Stopwatch.Frequency / 1000;
        var consumer = new Thread(() =>
        {
            var batch = new List<CardEvent>(512);
            var stamps = new List<long>(512);
            var output = new BatchOutput();
            var done = 0;
            while (done < count)
            {
                batch.Clear(); stamps.Clear();
                if (!channel.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult()) break;
                while (batch.Count < 512)
                {
                    if (channel.Reader.TryRead(out var item)) { batch.Add(item.Event); stamps.Add(item.Stamp); continue; }
                    if (Stopwatch.GetTimestamp() - stamps[0] >= maxWait) break;
                    Thread.Sleep(1); // not a spin: on two shared cores it would take the producer's time
                }
                scorer.Score(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batch), output);
                alerts.AddRange(output.Alerts);
                scorer.Commit();
                var now = Stopwatch.GetTimestamp();
                foreach (var s in stamps) latencies[done++] = (now - s) * 1000.0 / Stopwatch.Frequency;
            }
        });
        consumer.Start();
        var start = Stopwatch.GetTimestamp();
        var sent = 0;
        while (sent < count)
        {
            var due = Math.Min(count, (int)((Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency * rate));
            if (due <= sent) { Thread.Sleep(1); continue; }
            for (; sent < due; sent++) channel.Writer.TryWrite((Stopwatch.GetTimestamp(), tokenizer.Tokenize(events[sent])));
        }
        var offered = count / ((Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency);
        channel.Writer.Complete();
        consumer.Join();
        return (Measure(latencies, 0.5), Measure(latencies, 0.99), offered, alerts);
    }

    private static double Measure(double[] values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
