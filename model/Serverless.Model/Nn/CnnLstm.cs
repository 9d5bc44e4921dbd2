namespace Serverless.Model.Nn;

/// <summary>
/// A model of the configured architecture (the CNN-LSTM or a baseline) whose weights are one flat
/// <c>float[]</c> described by <see cref="Layout"/>. The instance holds no weights: every call takes the
/// parameter vector, so federation code can evaluate any vector it holds. Not thread-safe (scratch
/// buffers are reused); use one instance per thread.
/// </summary>
public sealed class CnnLstm
{
    private readonly Network<float> _net;
    private Workspace<float>? _workspace;

    public CnnLstm(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        _net = new Network<float>(config);
    }

    public ModelConfig Config => _net.Config;
    public ParameterLayout Layout => _net.Layout;
    public int ParameterCount => _net.Layout.TotalLength;

    internal Network<float> Network => _net;

    /// <summary>
    /// Deterministic initial weights: Glorot-uniform (Glorot and Bengio 2010) for matrices, zero biases,
    /// except the LSTM forget-gate bias at 1 (Jozefowicz et al. 2015) so early training remembers.
    /// </summary>
    public float[] InitializeParameters(int seed)
    {
        var p = new float[ParameterCount];
        var rng = new Random(seed);
        foreach (var view in Layout.Views)
        {
            var span = p.AsSpan(view.Offset, view.Length);
            if (view.Shape.Count == 1)
            {
                if (view.Name == ModelLayout.LstmB)
                    span.Slice(2 * Config.LstmHidden, Config.LstmHidden).Fill(1f);
                continue;
            }
            var fanOut = view.Shape[0];
            var fanIn = view.Length / fanOut;
            var limit = Math.Sqrt(6.0 / (fanIn + fanOut));
            for (var i = 0; i < span.Length; i++) span[i] = (float)((rng.NextDouble() * 2 - 1) * limit);
        }
        return p;
    }

    /// <summary>Probabilities <c>[data.Count, Config.Outputs]</c>: P(class 1) for binary, the softmax for multiclass.</summary>
    public float[] Predict(ReadOnlySpan<float> parameters, SequenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var output = new float[data.Count * Config.Outputs];
        Predict(parameters, data, output);
        return output;
    }

    /// <summary>Into-destination form of <see cref="Predict(ReadOnlySpan{float}, SequenceDataset)"/>.</summary>
    public void Predict(ReadOnlySpan<float> parameters, SequenceDataset data, Span<float> destination)
    {
        CheckInputs(parameters, data);
        if (destination.Length != data.Count * Config.Outputs)
            throw new ArgumentException($"destination has {destination.Length} entries, expected {data.Count * Config.Outputs}", nameof(destination));
        const int chunk = 256;
        var ws = _workspace is { MaxBatch: >= chunk } w ? w : _workspace = _net.CreateWorkspace(chunk);
        var stride = Config.Steps * Config.Features;
        for (var start = 0; start < data.Count; start += chunk)
        {
            var n = Math.Min(chunk, data.Count - start);
            _net.Forward(parameters, data.Values.AsSpan(start * stride, n * stride), data.Mask.AsSpan(start * Config.Steps, n * Config.Steps), n, ws);
            ws.Probabilities.AsSpan(0, n * Config.Outputs).CopyTo(destination.Slice(start * Config.Outputs));
        }
    }

    /// <summary>Mean cross-entropy of <paramref name="parameters"/> on <paramref name="data"/>.</summary>
    public double Loss(ReadOnlySpan<float> parameters, SequenceDataset data)
    {
        CheckInputs(parameters, data);
        const int chunk = 256;
        var ws = _workspace is { MaxBatch: >= chunk } w ? w : _workspace = _net.CreateWorkspace(chunk);
        var stride = Config.Steps * Config.Features;
        var total = 0.0;
        for (var start = 0; start < data.Count; start += chunk)
        {
            var n = Math.Min(chunk, data.Count - start);
            _net.Forward(parameters, data.Values.AsSpan(start * stride, n * stride), data.Mask.AsSpan(start * Config.Steps, n * Config.Steps), n, ws);
            total += (double)_net.Loss(data.Labels.AsSpan(start, n), n, ws) * n;
        }
        return data.Count == 0 ? 0 : total / data.Count;
    }

    internal void CheckInputs(ReadOnlySpan<float> parameters, SequenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (parameters.Length != ParameterCount)
            throw new ArgumentException($"parameter vector has {parameters.Length} entries, the model needs {ParameterCount}", nameof(parameters));
        if (data.Steps != Config.Steps || data.Features != Config.Features)
            throw new ArgumentException($"dataset is [{data.Steps} steps, {data.Features} features], the model expects [{Config.Steps}, {Config.Features}]", nameof(data));
        if (data.Classes != Config.Classes)
            throw new ArgumentException($"dataset has {data.Classes} classes, the model {Config.Classes}", nameof(data));
    }
}
