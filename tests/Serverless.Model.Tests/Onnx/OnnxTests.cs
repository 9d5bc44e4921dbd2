using System.Diagnostics;
using Google.Protobuf;
using Serverless.Model.Data;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;
using Serverless.Model.Onnx.Proto;
using Serverless.Testing;

namespace Serverless.Model.Tests.Onnx;

public sealed class OnnxTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("model-onnx-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>1,000 records: a 4 x 250 patient cohort, preprocessed with the shared statistics.</summary>
    private static readonly Lazy<SequenceDataset> Records = new(() =>
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 4, PatientsPerHospital = 250, Heterogeneity = 0, Seed = 99 });
        var patients = cohort.All().Patients;
        Assert.Equal(1000, patients.Count);
        return SharedTraining.Data.Preprocessor.Transform(patients);
    });

    /// <summary>The trained models, plus untrained variants that exercise every export path.</summary>
    public static TheoryData<string> Variants() => ["cnnlstm-trained", "cnn-trained", "logreg-trained", "poly-trained-hidden", "tanh-multiclass-hidden"];

    /// <summary>The HE-friendly variant (polynomial activations everywhere), briefly trained so its outputs are meaningful.</summary>
    private static readonly Lazy<(ModelConfig, float[])> Poly = new(() =>
    {
        var c = (SharedTraining.Config(ArchitectureKind.CnnLstm) with { HeadHidden = 8, KernelSize = 2 }).WithPolynomialActivations();
        var model = new CnnLstm(c);
        var init = model.InitializeParameters(4);
        for (var i = 0; i < init.Length; i++) init[i] *= 0.5f;
        var run = new Serverless.Model.Training.Trainer(model, new Serverless.Model.Training.TrainerOptions { Epochs = 3, LearningRate = 0.003, Patience = 0, GradientClipNorm = 1 })
            .Train(SharedTraining.Train, init);
        return (c, run.Parameters);
    });

    private static (ModelConfig Config, float[] Parameters) Variant(string name)
    {
        switch (name)
        {
            case "cnnlstm-trained": return Trained(ArchitectureKind.CnnLstm);
            case "cnn-trained": return Trained(ArchitectureKind.CnnOnly);
            case "logreg-trained": return Trained(ArchitectureKind.LastVisitLogistic);
            case "poly-trained-hidden": return Poly.Value;
            default:
            {
                var c = SharedTraining.Config(ArchitectureKind.CnnLstm) with { Task = TaskKind.Multiclass, Classes = 3, HeadHidden = 6, KernelSize = 4, ConvActivation = ActivationKind.Tanh };
                return (c, new CnnLstm(c).InitializeParameters(5));
            }
        }

        static (ModelConfig, float[]) Trained(ArchitectureKind arch)
        {
            var t = SharedTraining.Models[arch];
            return (t.Model.Config, t.Run.Parameters);
        }
    }

    private static SequenceDataset RecordsFor(ModelConfig config)
    {
        var r = Records.Value;
        return config.Classes == r.Classes ? r : new SequenceDataset(r.Count, r.Steps, r.Features, config.Classes, r.Values, r.Mask, r.Labels.Select(l => l % config.Classes).ToArray());
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Export_then_import_gives_back_the_same_config_parameters_and_predictions(string variant)
    {
        var (config, p) = Variant(variant);
        var bytes = OnnxExporter.Export(config, p, new Dictionary<string, string> { ["owner"] = "tests" });
        var loaded = OnnxImporter.Load(bytes);
        Assert.Equal(config, loaded.Config);
        Assert.Equal(p, loaded.Parameters);
        Assert.Equal("tests", loaded.Metadata["owner"]);
        var data = RecordsFor(config);
        Assert.Equal(new CnnLstm(config).Predict(p, data), loaded.CreateModel().Predict(loaded.Parameters, data));
        // Deterministic bytes: the same model exports to the same file.
        Assert.Equal(bytes, OnnxExporter.Export(config, p, new Dictionary<string, string> { ["owner"] = "tests" }));
    }

    [Theory]
    [MemberData(nameof(Variants))]
    public void Onnx_runtime_matches_the_csharp_forward_pass_within_1e_5_on_1000_records(string variant)
    {
        var (config, p) = Variant(variant);
        var data = RecordsFor(config);
        var expected = new CnnLstm(config).Predict(p, data);
        using var scorer = OnnxScorer.Load(OnnxExporter.Export(config, p));
        var actual = scorer.Predict(data);
        Assert.Equal(config, scorer.Config);
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= 1e-5, $"max |C# - ORT| = {worst:E2}");
        // The outputs are not degenerate (a constant model would match trivially).
        Assert.True(expected.Max() - expected.Min() > 0.05, "predictions barely vary");
    }

    [Fact]
    public void One_session_scores_from_many_threads_at_once_with_the_same_answers()
    {
        var (config, p) = Variant("cnnlstm-trained");
        var data = RecordsFor(config);
        using var scorer = OnnxScorer.Load(OnnxExporter.Export(config, p));
        var reference = scorer.Predict(data);
        var results = new float[8][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => results[i] = scorer.Predict(data));
        Assert.All(results, r => Assert.Equal(reference, r));
    }

    [Fact]
    public void Scoring_writes_into_the_callers_buffer_and_checks_shapes()
    {
        var (config, p) = Variant("cnn-trained");
        var data = RecordsFor(config);
        using var scorer = OnnxScorer.Load(OnnxExporter.Export(config, p));
        var output = new float[data.Count * config.Outputs + 3];
        output[^1] = 42;
        scorer.Predict(data, output);
        Assert.Equal(scorer.Predict(data), output[..^3]);
        Assert.Equal(42, output[^1]); // nothing written past the records
        Assert.Throws<ArgumentException>(() => scorer.Predict(data, new float[data.Count * config.Outputs - 1]));
        var wrongShape = new SequenceDataset(1, config.Steps + 1, config.Features, config.Classes, new float[(config.Steps + 1) * config.Features], new float[config.Steps + 1], [0]);
        Assert.Throws<ArgumentException>(() => scorer.Predict(wrongShape));
    }

    [Theory]
    [InlineData("truncated")]
    [InlineData("bit-flipped")]
    [InlineData("empty")]
    public void A_truncated_or_corrupted_file_is_refused_with_a_clear_error_before_any_session_exists(string kind)
    {
        var (config, p) = Variant("cnnlstm-trained");
        var bytes = OnnxExporter.Export(config, p);
        bytes = kind switch
        {
            "truncated" => bytes[..(bytes.Length / 2)],
            "empty" => [],
            _ => Flip(bytes),
        };
        var e = Assert.Throws<InvalidDataException>(() => OnnxScorer.Load(bytes));
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.DoesNotContain("\n   at ", e.Message, StringComparison.Ordinal);

        static byte[] Flip(byte[] b)
        {
            var copy = b.ToArray();
            // The framing at the head of the file: field tags and lengths no longer describe the bytes after them.
            for (var i = 0; i < 16; i++) copy[i] ^= 0x80;
            return copy;
        }
    }

    [ServerTheory]
    [MemberData(nameof(Variants))]
    public void The_onnx_checker_accepts_the_file_with_full_check(string variant)
    {
        var (config, p) = Variant(variant);
        var path = Path.Combine(_dir, "model.onnx");
        File.WriteAllBytes(path, OnnxExporter.Export(config, p));
        var start = new ProcessStartInfo(TestServers.OnnxCheckerPython) { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add("import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)");
        start.ArgumentList.Add(path);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, stderr);
    }

    private static byte[] Mutate(Action<ModelProto> change)
    {
        var (config, p) = Variant("tanh-multiclass-hidden");
        var model = ModelProto.Parser.ParseFrom(OnnxExporter.Export(config, p));
        change(model);
        return model.ToByteArray();
    }

    public static TheoryData<string, string> BadFiles() => new()
    {
        { "garbage", "not a valid ModelProto" },
        { "empty", "empty" },
        { "truncated", "not a valid ModelProto" },
        { "ir", "IR version" },
        { "opset", "opset" },
        { "no-config", "missing" },
        { "bad-config", "config is invalid" },
        { "no-graph", "no graph" },
        { "missing-weight", "missing" },
        { "weight-shape", "shape" },
        { "weight-type", "data type" },
        { "weight-bytes", "raw bytes" },
        { "weight-nan", "NaN" },
        { "duplicate-initializer", "twice" },
        { "node-edited", "node" },
        { "node-removed", "nodes" },
        { "constant-edited", "differs" },
        { "input-edited", "inputs" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void Import_rejects_every_kind_of_bad_file_with_a_clear_message(string kind, string expectedMessage)
    {
        byte[] bytes = kind switch
        {
            "garbage" => [0xff, 0xff, 0xff, 0xff, 0x0f, 0x01],
            "empty" => [],
            "truncated" => Mutate(_ => { })[..200],
            "ir" => Mutate(m => m.IrVersion = 3),
            "opset" => Mutate(m => m.OpsetImport[0].Version = 9),
            "no-config" => Mutate(m => m.MetadataProps.Clear()),
            "bad-config" => Mutate(m => m.MetadataProps[0].Value = "{\"Features\": -4, \"Steps\": 8}"),
            "no-graph" => Mutate(m => m.Graph = null),
            "missing-weight" => Mutate(m => m.Graph.Initializer.Remove(m.Graph.Initializer.First(t => t.Name == "lstm.R"))),
            "weight-shape" => Mutate(m => m.Graph.Initializer.First(t => t.Name == "lstm.R").Dims[0] = 3),
            "weight-type" => Mutate(m => m.Graph.Initializer.First(t => t.Name == "conv.bias").DataType = 11),
            "weight-bytes" => Mutate(m => { var t = m.Graph.Initializer.First(t => t.Name == "conv.bias"); t.RawData = ByteString.CopyFrom(t.RawData.Span[..^4]); }),
            "weight-nan" => Mutate(m => { var t = m.Graph.Initializer.First(t => t.Name == "conv.bias"); var b = t.RawData.ToByteArray(); BitConverter.GetBytes(float.NaN).CopyTo(b, 0); t.RawData = ByteString.CopyFrom(b); }),
            "duplicate-initializer" => Mutate(m => m.Graph.Initializer.Add(m.Graph.Initializer[0].Clone())),
            "node-edited" => Mutate(m => m.Graph.Node.First(n => n.OpType == "Sigmoid").OpType = "Relu"),
            "node-removed" => Mutate(m => m.Graph.Node.RemoveAt(3)),
            "constant-edited" => Mutate(m => m.Graph.Initializer.First(t => t.Name == "const.one").RawData = ByteString.CopyFrom(BitConverter.GetBytes(2f))),
            "input-edited" => Mutate(m => m.Graph.Input[0].Type.TensorType.Shape.Dim[1].DimValue = 99),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var e = Assert.Throws<InvalidDataException>(() => OnnxImporter.Load(bytes));
        Assert.Contains(expectedMessage, e.Message);
    }

    [Fact]
    public void Export_rejects_wrong_parameter_counts_non_finite_weights_and_reserved_metadata()
    {
        var (config, p) = Variant("tanh-multiclass-hidden");
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(config, p.AsSpan(1)));
        var bad = p.ToArray();
        bad[5] = float.PositiveInfinity;
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(config, bad));
        Assert.Throws<ArgumentException>(() => OnnxExporter.Export(config, p, new Dictionary<string, string> { [OnnxExporter.ConfigKey] = "x" }));
    }

    [Fact]
    public void The_graph_uses_only_standard_operators_and_a_dynamic_batch_dimension()
    {
        var (config, p) = Variant("cnnlstm-trained");
        var model = ModelProto.Parser.ParseFrom(OnnxExporter.Export(config, p));
        string[] allowed = ["Transpose", "Conv", "Relu", "Tanh", "Sigmoid", "Gather", "Gemm", "Split", "Mul", "Add", "Sub", "Softmax", "Identity"];
        Assert.All(model.Graph.Node, n => { Assert.Contains(n.OpType, allowed); Assert.Equal("", n.Domain); });
        Assert.Contains(model.Graph.Node, n => n.OpType == "Conv");
        Assert.Equal("batch", model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(17, model.OpsetImport.Single().Version);
    }
}
