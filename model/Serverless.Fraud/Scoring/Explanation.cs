using Serverless.Fraud.Features;
using Serverless.Model.Data;
using Serverless.Model.Nn;

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
    private readonly IModelRunner _model;
    private readonly int _k, _f;
    private readonly SequenceDataset _batch;
    private readonly float[] _output;

    /// <summary>Explains with the C# forward pass of the given weights.</summary>
    public OcclusionExplainer(ModelConfig config, float[] parameters)
        : this(ModelRunners.Create(new Training.FraudModel("explained", config, parameters), ScoringRuntime.CSharp))
    {
    }

    public OcclusionExplainer(IModelRunner model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var config = model.Config;
        _model = model;
        _k = config.Steps;
        _f = config.Features;
        var rows = 1 + _f + _k;
        var mask = new float[rows * _k];
        for (var r = 0; r < rows; r++) mask[r * _k] = 1;
        _batch = new SequenceDataset(rows, _k, _f, 2, new float[rows * _k * _f], mask, new int[rows]);
        _output = new float[rows];
    }

    /// <summary>Explains one window [k, F] with mask [k] (real steps first).</summary>
    public Explanation Explain(ReadOnlySpan<float> window, ReadOnlySpan<float> mask, IReadOnlyList<string>? featureNames = null)
    {
        var stride = _k * _f;
        if (window.Length != stride || mask.Length != _k) throw new ArgumentException($"window must be [{_k}, {_f}] and mask [{_k}]");
        var names = featureNames ?? (_f == EventFeatures.Count ? EventFeatures.Names : Enumerable.Range(0, _f).Select(i => $"f{i}").ToList());
        var rows = 1 + _f + _k;
        var values = _batch.Values;
        for (var r = 0; r < rows; r++)
        {
            window.CopyTo(values.AsSpan(r * stride, stride));
            mask.CopyTo(_batch.Mask.AsSpan(r * _k, _k));
        }
        for (var f = 0; f < _f; f++)
        {
            var row = values.AsSpan((1 + f) * stride, stride);
            for (var s = 0; s < _k; s++) row[s * _f + f] = 0;
        }
        for (var s = 0; s < _k; s++)
            values.AsSpan((1 + _f + s) * stride + s * _f, _f).Clear();
        _model.Predict(_batch, _output);
        var p = _output;
        var full = Logit(p[0]);
        var features = new FeatureAttribution[_f];
        for (var f = 0; f < _f; f++) features[f] = new FeatureAttribution(names[f], full - Logit(p[1 + f]));
        var steps = new double[_k];
        for (var s = 0; s < _k; s++) steps[s] = mask[s] == 0 ? 0 : full - Logit(p[1 + _f + s]);
        return new Explanation("occlusion", full, features, steps);
    }

    internal static double Logit(float p)
    {
        var q = Math.Clamp((double)p, 1e-7, 1 - 1e-7);
        return Math.Log(q / (1 - q));
    }
}
