namespace Serverless.Fraud.Scoring;

/// <summary>One feature's share of a score, in log-odds.</summary>
public sealed record FeatureAttribution(string Feature, double LogOdds);

/// <summary>
/// Why a window scored what it did, by occlusion (Zeiler and Fergus 2014): attribution of feature f =
/// logit(window) − logit(window with f set to its baseline 0 at every real step); attribution of step s =
/// logit(window) − logit(window with every feature of step s at 0). The baseline 0 is the centre of the
/// fixed feature transforms (a typical event), so a positive attribution pushes towards fraud. For a
/// model linear in its input (the logistic baseline) the attributions are exact: w_f·x_f per feature, and
/// the step attributions add up to logit(window) − logit(all-zero window).
/// </summary>
public sealed record Explanation(
    string Method,
    double LogOdds,
    IReadOnlyList<FeatureAttribution> Features,
    IReadOnlyList<double> Steps)
{
    /// <summary>The <paramref name="count"/> features with the largest absolute attribution, largest first.</summary>
    public IReadOnlyList<FeatureAttribution> Top(int count) =>
        Features.OrderByDescending(a => Math.Abs(a.LogOdds)).ThenBy(a => a.Feature, StringComparer.Ordinal).Take(count).ToList();
}

/// <summary>
/// Occlusion explanations on the served model (the same runner that scored the event, ONNX Runtime or C#):
/// one batched forward pass of 1 + F + k windows per explained event.
/// </summary>
public sealed class OcclusionExplainer
{
    // Explanations run in chunks of 16, 8, 4, 2 or 1 windows (25 alerts: 16 + 8 + 1): ONNX Runtime plans its
    // memory per input shape, so five shapes keep it from re-planning for every alert count, and no chunk
    // computes rows for alerts that are not there (a fixed 16 made a batch with 3 alerts pay for 16).
    private const int Chunk = 16;
    private readonly IModelRunner _model;
    private readonly int _k, _f, _group;
    private readonly IReadOnlyList<string> _names;
    private readonly SequenceDataset?[] _batches = new SequenceDataset?[5];
    private float[] _output = [];

    /// <summary>Explains with the C# forward pass of the given weights.</summary>
    public OcclusionExplainer(ModelConfig config, float[] parameters)
        : this(ModelRunners.Create(new Training.FraudModel("explained", config, parameters), ScoringRuntime.CSharp))
    {
    }

    public OcclusionExplainer(IModelRunner model, IReadOnlyList<string>? featureNames = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _k = model.Config.Steps;
        _f = model.Config.Features;
        _group = 1 + _f + _k;
        _names = featureNames ?? (_f == EventFeatures.Count ? EventFeatures.Names : Enumerable.Range(0, _f).Select(i => $"f{i}").ToList());
        if (_names.Count != _f) throw new ArgumentException($"{_names.Count} feature names for {_f} features", nameof(featureNames));
    }

    /// <summary>Explains one window [k, F] with mask [k] (real steps first).</summary>
    public Explanation Explain(ReadOnlySpan<float> window, ReadOnlySpan<float> mask) => Explain(window, mask, 1)[0];

    /// <summary>
    /// Explains <paramref name="count"/> windows ([count, k, F] and masks [count, k]) in one forward pass of
    /// count × (1 + F + k) rows, so a micro-batch's alerts cost one runtime call, not one each.
    /// </summary>
    public IReadOnlyList<Explanation> Explain(ReadOnlySpan<float> windows, ReadOnlySpan<float> masks, int count)
    {
        var stride = _k * _f;
        if (count < 0 || windows.Length != count * stride || masks.Length != count * _k)
            throw new ArgumentException($"windows must be [{count}, {_k}, {_f}] and masks [{count}, {_k}]");
        var result = new Explanation[count];
        for (var start = 0; start < count;)
        {
            var n = Math.Min(Chunk, 1 << System.Numerics.BitOperations.Log2((uint)(count - start)));
            ExplainChunk(windows, masks, start, n, result);
            start += n;
        }
        return result;
    }

    private void ExplainChunk(ReadOnlySpan<float> windows, ReadOnlySpan<float> masks, int start, int count, Explanation[] result)
    {
        var stride = _k * _f;
        var batch = Batch(count);
        var values = batch.Values;
        for (var w = 0; w < count; w++)
        {
            var window = windows.Slice((start + w) * stride, stride);
            var mask = masks.Slice((start + w) * _k, _k);
            var first = w * _group;
            for (var r = 0; r < _group; r++)
            {
                window.CopyTo(values.AsSpan((first + r) * stride, stride));
                mask.CopyTo(batch.Mask.AsSpan((first + r) * _k, _k));
            }
            for (var f = 0; f < _f; f++)
            {
                var row = values.AsSpan((first + 1 + f) * stride, stride);
                for (var s = 0; s < _k; s++) row[s * _f + f] = 0;
            }
            for (var s = 0; s < _k; s++)
                values.AsSpan((first + 1 + _f + s) * stride + s * _f, _f).Clear();
        }
        _model.Predict(batch, _output);
        for (var w = 0; w < count; w++)
        {
            var p = _output.AsSpan(w * _group, _group);
            var mask = masks.Slice((start + w) * _k, _k);
            var full = Logit(p[0]);
            var features = new FeatureAttribution[_f];
            for (var f = 0; f < _f; f++) features[f] = new FeatureAttribution(_names[f], full - Logit(p[1 + f]));
            var steps = new double[_k];
            for (var s = 0; s < _k; s++) steps[s] = mask[s] == 0 ? 0 : full - Logit(p[1 + _f + s]);
            result[start + w] = new Explanation("occlusion", full, features, steps);
        }
    }

    /// <summary>The reused dataset of a chunk of <paramref name="windows"/> (a power of two up to 16) explained windows.</summary>
    private SequenceDataset Batch(int windows)
    {
        var index = System.Numerics.BitOperations.Log2((uint)windows);
        if (_batches[index] is { } b) return b;
        var rows = windows * _group;
        var mask = new float[rows * _k];
        for (var r = 0; r < rows; r++) mask[r * _k] = 1;
        b = _batches[index] = new SequenceDataset(rows, _k, _f, 2, new float[rows * _k * _f], mask, new int[rows]);
        if (_output.Length < rows) _output = new float[Chunk * _group];
        return b;
    }

    internal static double Logit(float p)
    {
        var q = Math.Clamp((double)p, 1e-7, 1 - 1e-7);
        return Math.Log(q / (1 - q));
    }
}
