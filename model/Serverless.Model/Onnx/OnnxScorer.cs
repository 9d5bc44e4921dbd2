using Microsoft.ML.OnnxRuntime;

namespace Serverless.Model.Onnx;

/// <summary>Session settings for <see cref="OnnxScorer"/>.</summary>
public sealed record OnnxScorerOptions
{
    /// <summary>Threads inside one operator; 0 lets ONNX Runtime use every core. Benchmarks use 1 to compare with the single-threaded C# pass.</summary>
    public int IntraOpThreads { get; init; }

    public static OnnxScorerOptions Default { get; } = new();
}

/// <summary>
/// Scores records with an exported model file in Microsoft's ONNX Runtime, in process. What is scored is
/// exactly the file that was exported and audited: the bytes are checked by <see cref="OnnxImporter"/>
/// (our graph, valid weights) and then handed unchanged to ONNX Runtime.
/// </summary>
/// <remarks>
/// One instance holds one <see cref="InferenceSession"/>; <see cref="Predict(SequenceDataset, float[])"/> may be
/// called from many threads at once (ONNX Runtime's Run is thread-safe). Inputs and outputs are OrtValues over
/// the caller's arrays, pinned, not copied.
/// </remarks>
public sealed class OnnxScorer : IDisposable
{
    private static readonly string[] InputNames = [OnnxExporter.FeaturesInput, OnnxExporter.MaskInput];
    private static readonly string[] OutputNames = [OnnxExporter.Output];

    private readonly InferenceSession _session;

    private OnnxScorer(OnnxModel model, InferenceSession session)
    {
        Model = model;
        _session = session;
    }

    /// <summary>The model as our importer read it: configuration, parameters and metadata.</summary>
    public OnnxModel Model { get; }

    public ModelConfig Config => Model.Config;

    /// <summary>Loads a model file.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a model file our exporter writes, or ONNX Runtime refuses them.</exception>
    public static OnnxScorer Load(byte[] onnx, OnnxScorerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        var model = OnnxImporter.Load(onnx); // throws InvalidDataException naming what is wrong
        options ??= OnnxScorerOptions.Default;
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(onnx, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"ONNX Runtime refused the model file: {e.Message}", e);
        }
        return new OnnxScorer(model, session);
    }

    /// <summary>Loads a model file from disk.</summary>
    /// <exception cref="InvalidDataException">As <see cref="Load(byte[], OnnxScorerOptions?)"/>.</exception>
    public static OnnxScorer LoadFile(string path, OnnxScorerOptions? options = null) => Load(File.ReadAllBytes(path), options);

    /// <summary>Probabilities, <c>[records, outputs]</c> row-major, as <see cref="CnnLstm.Predict(ReadOnlySpan{float}, SequenceDataset)"/> returns them.</summary>
    public float[] Predict(SequenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var output = new float[data.Count * Config.Outputs];
        Predict(data, output);
        return output;
    }

    /// <summary>Writes the probabilities into <paramref name="output"/> (at least records x outputs long).</summary>
    public void Predict(SequenceDataset data, float[] output)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        if (data.Steps != Config.Steps || data.Features != Config.Features)
            throw new ArgumentException($"records have {data.Steps} steps x {data.Features} features; the model expects {Config.Steps} x {Config.Features}", nameof(data));
        var needed = data.Count * Config.Outputs;
        if (output.Length < needed)
            throw new ArgumentException($"output holds {output.Length} values; {needed} are needed", nameof(output));
        if (data.Count == 0) return;

        using var features = OrtValue.CreateTensorValueFromMemory(data.Values, [data.Count, data.Steps, data.Features]);
        using var mask = OrtValue.CreateTensorValueFromMemory(data.Mask, [data.Count, data.Steps]);
        using var probabilities = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, output.AsMemory(0, needed), [data.Count, Config.Outputs]);
        using var run = new RunOptions();
        _session.Run(run, InputNames, [features, mask], OutputNames, [probabilities]);
    }

    public void Dispose() => _session.Dispose();
}
