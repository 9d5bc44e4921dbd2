using Serverless.Fraud.Training;
using Serverless.Model.Onnx;

namespace Serverless.Fraud.Scoring;

/// <summary>Which runtime evaluates the served models.</summary>
public enum ScoringRuntime
{
    /// <summary>Microsoft.ML.OnnxRuntime in process, over the exported ONNX file (validated by our importer first).</summary>
    OnnxRuntime,

    /// <summary>The hand-written C# forward pass of model/Serverless.Model.</summary>
    CSharp,
}

/// <summary>P(fraud) for a batch of windows: the one call the scorer and the explainer need from a runtime.</summary>
public interface IModelRunner : IDisposable
{
    string Version { get; }
    ModelConfig Config { get; }

    /// <summary>Writes P(fraud) of each of <paramref name="data"/>'s rows into <paramref name="output"/> (at least data.Count long).</summary>
    void Predict(SequenceDataset data, float[] output);
}

public static class ModelRunners
{
    public static IModelRunner Create(FraudModel model, ScoringRuntime runtime, int intraOpThreads = 1)
    {
        ArgumentNullException.ThrowIfNull(model);
        return runtime switch
        {
            ScoringRuntime.CSharp => new CSharpRunner(model),
            ScoringRuntime.OnnxRuntime => new OrtRunner(model, intraOpThreads),
            _ => throw new ArgumentOutOfRangeException(nameof(runtime), runtime, null),
        };
    }

    private sealed class CSharpRunner(FraudModel model) : IModelRunner
    {
        private readonly CnnLstm _net = new(model.Config);
        public string Version => model.Version;
        public ModelConfig Config => model.Config;
        public void Predict(SequenceDataset data, float[] output) => _net.Predict(model.Parameters, data, output.AsSpan(0, data.Count));
        public void Dispose() { }
    }

    /// <summary>The model exported by <see cref="OnnxExporter"/> and loaded into an ONNX Runtime session (one intra-op thread by default: one scorer per core).</summary>
    private sealed class OrtRunner(FraudModel model, int threads) : IModelRunner
    {
        private readonly OnnxScorer _scorer = OnnxScorer.Load(OnnxExporter.Export(model.Config, model.Parameters), new OnnxScorerOptions { IntraOpThreads = threads });
        public string Version => model.Version;
        public ModelConfig Config => model.Config;
        public void Predict(SequenceDataset data, float[] output) => _scorer.Predict(data, output);
        public void Dispose() => _scorer.Dispose();
    }
}
