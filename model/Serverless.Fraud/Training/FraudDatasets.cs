using Serverless.Fraud.Scoring;

namespace Serverless.Fraud.Training;

/// <summary>Windows built from a stream, with what each row is, for per-pattern and per-bank evaluation.</summary>
public sealed record FraudDataset(SequenceDataset Data, FraudPattern[] Patterns, int[] Banks)
{
    /// <summary>The legitimate rows plus the fraud rows of one pattern (AUROC of that pattern against normal traffic).</summary>
    public FraudDataset PatternVersusLegitimate(FraudPattern pattern)
    {
        var rows = new List<int>();
        for (var i = 0; i < Patterns.Length; i++)
            if (Patterns[i] == FraudPattern.None || Patterns[i] == pattern) rows.Add(i);
        return Subset(rows);
    }

    public FraudDataset Subset(IReadOnlyList<int> rows)
    {
        var idx = rows.ToArray();
        return new FraudDataset(Data.Subset(idx), idx.Select(i => Patterns[i]).ToArray(), idx.Select(i => Banks[i]).ToArray());
    }
}

/// <summary>
/// Replays a stream through the same tokenizer, history store and encoder the scorer uses (so training and
/// serving windows are identical), and keeps every fraud event and a seeded sample of the legitimate ones.
/// </summary>
public static class FraudDatasets
{
    /// <param name="steps">k, the window length.</param>
    /// <param name="keepLegitimate">Share of legitimate events kept (1 keeps all).</param>
    /// <param name="include">Which events become rows (all pass through the history either way); null for all.</param>
    public static FraudDataset Build(IReadOnlyList<Transaction> stream, CardTokenizer tokenizer, int steps, double keepLegitimate = 1, int seed = 1, Func<Transaction, CardToken, bool>? include = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!(keepLegitimate > 0 && keepLegitimate <= 1)) throw new ArgumentOutOfRangeException(nameof(keepLegitimate), keepLegitimate, "(0, 1]");
        const int f = EventFeatures.Count;
        var store = new InMemoryCardHistoryStore(steps);
        var window = new float[steps * f];
        var mask = new float[steps];
        var scratch = new float[WindowBuilder.ScratchLength(steps)];
        var values = new List<float>();
        var masks = new List<float>();
        var labels = new List<int>();
        var patterns = new List<FraudPattern>();
        var banks = new List<int>();
        var rng = new Random(seed);
        foreach (var t in stream)
        {
            var token = tokenizer.Tokenize(t.CardNumber);
            WindowBuilder.Append(store, CardEvent.From(t, token), window, mask, scratch);
            var keep = t.IsFraud || keepLegitimate >= 1 || rng.NextDouble() < keepLegitimate;
            if (!keep || (include is not null && !include(t, token))) continue;
            values.AddRange(window);
            masks.AddRange(mask);
            labels.Add(t.IsFraud ? 1 : 0);
            patterns.Add(t.Pattern);
            banks.Add(t.Bank);
        }
        var data = new SequenceDataset(labels.Count, steps, f, 2, values.ToArray(), masks.ToArray(), labels.ToArray());
        return new FraudDataset(data, patterns.ToArray(), banks.ToArray());
    }

    /// <summary>
    /// Windows of already tokenized events with their labels (1 = fraud), replayed in the given order through
    /// a fresh history, as the scorer would see them: what a labelled evaluation set posted to the app becomes.
    /// </summary>
    public static SequenceDataset BuildLabelled(IReadOnlyList<CardEvent> events, IReadOnlyList<int> labels, int steps)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentNullException.ThrowIfNull(labels);
        if (events.Count != labels.Count) throw new ArgumentException($"{events.Count} events but {labels.Count} labels", nameof(labels));
        const int f = EventFeatures.Count;
        var store = new InMemoryCardHistoryStore(steps);
        var values = new float[events.Count * steps * f];
        var masks = new float[events.Count * steps];
        var scratch = new float[WindowBuilder.ScratchLength(steps)];
        var y = new int[events.Count];
        for (var i = 0; i < events.Count; i++)
        {
            if (labels[i] is not (0 or 1)) throw new ArgumentException($"label {i} is {labels[i]}: it must be 0 or 1", nameof(labels));
            WindowBuilder.Append(store, events[i], values.AsSpan(i * steps * f, steps * f), masks.AsSpan(i * steps, steps), scratch);
            y[i] = labels[i];
        }
        return new SequenceDataset(events.Count, steps, f, 2, values, masks, y);
    }

    /// <summary>Each window's latest real step [rows, F]: the drift monitor's reference population.</summary>
    public static float[] LatestSteps(SequenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var f = data.Features;
        var rows = new float[data.Count * f];
        for (var i = 0; i < data.Count; i++)
            data.SequenceValues(i).Slice((data.Length(i) - 1) * f, f).CopyTo(rows.AsSpan(i * f));
        return rows;
    }

    /// <summary>Cards split by token (a stable hash): a card is entirely in train or entirely in test.</summary>
    public static bool IsTestCard(CardToken card, double testFraction) => card.Bucket < testFraction;
}
