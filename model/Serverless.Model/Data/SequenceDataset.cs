namespace Serverless.Model.Data;

/// <summary>
/// Padded visit sequences ready for the model: features <c>[Count, Steps, Features]</c> row-major in one
/// flat array, a mask <c>[Count, Steps]</c> (1 for a real visit, 0 for padding; real visits come first),
/// and one label per sequence (0/1 for binary, 0..Classes-1 for multiclass).
/// </summary>
public sealed class SequenceDataset
{
    public SequenceDataset(int count, int steps, int features, int classes, float[] values, float[] mask, int[] labels)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(features, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(mask);
        ArgumentNullException.ThrowIfNull(labels);
        if (values.Length != (long)count * steps * features)
            throw new ArgumentException($"values has {values.Length} entries, expected {count}*{steps}*{features}", nameof(values));
        if (mask.Length != count * steps)
            throw new ArgumentException($"mask has {mask.Length} entries, expected {count}*{steps}", nameof(mask));
        if (labels.Length != count)
            throw new ArgumentException($"labels has {labels.Length} entries, expected {count}", nameof(labels));
        for (var i = 0; i < count; i++)
        {
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentException($"label {labels[i]} at {i} is outside 0..{classes - 1}", nameof(labels));
            var seenPad = false;
            for (var t = 0; t < steps; t++)
            {
                var m = mask[i * steps + t];
                if (m != 0f && m != 1f) throw new ArgumentException($"mask[{i},{t}] is {m}, expected 0 or 1", nameof(mask));
                if (m == 0f) seenPad = true;
                else if (seenPad) throw new ArgumentException($"mask of sequence {i} has a visit after padding", nameof(mask));
            }
        }
        foreach (var v in values)
            if (!float.IsFinite(v)) throw new ArgumentException("values contain NaN or infinity (impute first)", nameof(values));
        Count = count;
        Steps = steps;
        Features = features;
        Classes = classes;
        Values = values;
        Mask = mask;
        Labels = labels;
    }

    public int Count { get; }
    public int Steps { get; }
    public int Features { get; }
    public int Classes { get; }

    /// <summary>[Count, Steps, Features] row-major.</summary>
    public float[] Values { get; }

    /// <summary>[Count, Steps]: 1 for a visit, 0 for padding.</summary>
    public float[] Mask { get; }

    public int[] Labels { get; }

    public ReadOnlySpan<float> SequenceValues(int index) => Values.AsSpan(index * Steps * Features, Steps * Features);

    public ReadOnlySpan<float> SequenceMask(int index) => Mask.AsSpan(index * Steps, Steps);

    /// <summary>Number of real visits in sequence <paramref name="index"/>.</summary>
    public int Length(int index)
    {
        var m = SequenceMask(index);
        var n = 0;
        while (n < m.Length && m[n] != 0f) n++;
        return n;
    }

    /// <summary>A new dataset holding the given sequences, in the given order.</summary>
    public SequenceDataset Subset(ReadOnlySpan<int> indices)
    {
        var stride = Steps * Features;
        var values = new float[indices.Length * stride];
        var mask = new float[indices.Length * Steps];
        var labels = new int[indices.Length];
        for (var i = 0; i < indices.Length; i++)
        {
            var src = indices[i];
            if ((uint)src >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {src} outside 0..{Count - 1}");
            Values.AsSpan(src * stride, stride).CopyTo(values.AsSpan(i * stride));
            Mask.AsSpan(src * Steps, Steps).CopyTo(mask.AsSpan(i * Steps));
            labels[i] = Labels[src];
        }
        return new SequenceDataset(indices.Length, Steps, Features, Classes, values, mask, labels);
    }

    /// <summary>Deterministic shuffle-and-split: the first part gets <c>round(Count * fraction)</c> sequences.</summary>
    public (SequenceDataset First, SequenceDataset Second) Split(double fraction, int seed)
    {
        if (!(fraction >= 0 && fraction <= 1)) throw new ArgumentOutOfRangeException(nameof(fraction));
        var order = new int[Count];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        new Random(seed).Shuffle(order);
        var cut = (int)Math.Round(Count * fraction);
        return (Subset(order.AsSpan(0, cut)), Subset(order.AsSpan(cut)));
    }

    /// <summary>Concatenates datasets of the same shape (e.g. several hospitals for a central baseline).</summary>
    public static SequenceDataset Concat(IReadOnlyList<SequenceDataset> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0) throw new ArgumentException("nothing to concatenate", nameof(parts));
        var first = parts[0];
        var count = 0;
        foreach (var p in parts)
        {
            if (p.Steps != first.Steps || p.Features != first.Features || p.Classes != first.Classes)
                throw new ArgumentException("datasets differ in steps, features or classes", nameof(parts));
            count += p.Count;
        }
        var values = new float[count * first.Steps * first.Features];
        var mask = new float[count * first.Steps];
        var labels = new int[count];
        int v = 0, m = 0, l = 0;
        foreach (var p in parts)
        {
            p.Values.CopyTo(values, v); v += p.Values.Length;
            p.Mask.CopyTo(mask, m); m += p.Mask.Length;
            p.Labels.CopyTo(labels, l); l += p.Labels.Length;
        }
        return new SequenceDataset(count, first.Steps, first.Features, first.Classes, values, mask, labels);
    }
}
