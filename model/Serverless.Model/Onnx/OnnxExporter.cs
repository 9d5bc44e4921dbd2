using Google.Protobuf;
using Serverless.Model.Onnx.Proto;

namespace Serverless.Model.Onnx;

/// <summary>
/// Writes a model and its parameters as an ONNX file (IR version 8, default-domain opset 17) that runs in
/// ONNX Runtime unchanged. Inputs: <c>features</c> [batch, Steps, Features] and <c>mask</c> [batch, Steps]
/// (float, 1 for a visit, 0 for padding; visits first); output <c>probabilities</c> [batch, Outputs]. The
/// batch dimension is dynamic. The LSTM is unrolled over the fixed number of steps into
/// Gemm / Sigmoid / Tanh / Mul / Add nodes, so polynomial activations (for the HE variant) export too, and a
/// padded step keeps the previous state exactly like the C# runtime (h = m·h_new + (1-m)·h_prev).
/// The config travels as JSON in <c>metadata_props</c> so <see cref="OnnxImporter"/> can rebuild the model.
/// </summary>
public static class OnnxExporter
{
    public const long IrVersion = 8;
    public const long Opset = 17;
    public const string ConfigKey = "serverless.model.config";
    public const string Producer = "Serverless.Model";
    public const string FeaturesInput = "features", MaskInput = "mask", Output = "probabilities";

    private static readonly JsonSerializerOptions Json = new() { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    /// <summary>The ONNX file as bytes. <paramref name="metadata"/> adds metadata_props (keys must not start with "serverless.model.").</summary>
    public static byte[] Export(ModelConfig config, ReadOnlySpan<float> parameters, IReadOnlyDictionary<string, string>? metadata = null) =>
        Build(config, parameters, metadata).ToByteArray();

    public static void Export(ModelConfig config, ReadOnlySpan<float> parameters, Stream destination, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(destination);
        Build(config, parameters, metadata).WriteTo(destination);
    }

    internal static string SerializeConfig(ModelConfig config) => JsonSerializer.Serialize(config, Json);

    internal static ModelConfig DeserializeConfig(string json) =>
        JsonSerializer.Deserialize<ModelConfig>(json, Json) ?? throw new InvalidDataException("ONNX: model config JSON is empty");

    internal static ModelProto Build(ModelConfig config, ReadOnlySpan<float> parameters, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validated();
        var layout = ModelLayout.Build(config);
        if (parameters.Length != layout.TotalLength)
            throw new ArgumentException($"parameter vector has {parameters.Length} entries, the model needs {layout.TotalLength}", nameof(parameters));
        foreach (var v in parameters)
            if (!float.IsFinite(v)) throw new ArgumentException("parameters contain NaN or infinity", nameof(parameters));

        var graph = new GraphProto { Name = $"serverless_{config.Architecture.ToString().ToLowerInvariant()}" };
        var g = new OnnxGraphBuilder(graph);
        graph.Input.Add(OnnxGraphBuilder.FloatInput(FeaturesInput, "batch", config.Steps, config.Features));
        graph.Input.Add(OnnxGraphBuilder.FloatInput(MaskInput, "batch", config.Steps));
        graph.Output.Add(OnnxGraphBuilder.FloatInput(Output, "batch", config.Outputs));
        foreach (var view in layout.Views)
            g.FloatTensor(view.Name, view.Shape, parameters.Slice(view.Offset, view.Length));
        var one = g.FloatScalar("const.one", 1f);
        var constants = new Constants(g);

        string headIn;
        switch (config.Architecture)
        {
            case ArchitectureKind.CnnLstm:
            {
                var conv = Conv(g, config, constants);                       // [N, C, T]
                headIn = Lstm(g, config, conv, one, constants);              // [N, H]
                break;
            }
            case ArchitectureKind.CnnOnly:
            {
                var conv = Conv(g, config, constants);                       // [N, C, T]
                var m3 = g.Node("Unsqueeze", [MaskInput, g.Int64Tensor("const.axes1", 1)]);   // [N, 1, T]
                var masked = g.Node("Mul", [conv, m3]);
                var sum = g.Node("ReduceSum", [masked, g.Int64Tensor("const.axes2", 2)], [OnnxGraphBuilder.Int("keepdims", 0)]); // [N, C]
                var count = g.Node("ReduceSum", [MaskInput, "const.axes1"], [OnnxGraphBuilder.Int("keepdims", 1)]);            // [N, 1]
                var inv = g.Node("Reciprocal", [g.Node("Max", [count, one])]);
                headIn = g.Node("Mul", [sum, inv]);
                break;
            }
            default:
            {
                // One-hot of the last visit: mask[t] - mask[t+1] (mask padded with a zero at the end).
                var padded = g.Node("Pad", [MaskInput, g.Int64Tensor("const.pad_end", 0, 0, 0, 1)]);                       // [N, T+1]
                var next = g.Node("Slice", [padded, g.Int64Tensor("const.start1", 1), g.Int64Tensor("const.end", config.Steps + 1), g.Int64Tensor("const.axis1", 1)]);
                var last = g.Node("Sub", [MaskInput, next]);                                                                 // [N, T]
                var last3 = g.Node("Unsqueeze", [last, g.Int64Tensor("const.axes2", 2)]);                                   // [N, T, 1]
                headIn = g.Node("ReduceSum", [g.Node("Mul", [FeaturesInput, last3]), g.Int64Tensor("const.axes1", 1)], [OnnxGraphBuilder.Int("keepdims", 0)]);
                break;
            }
        }

        if (config.HeadHidden > 0)
        {
            var hidden = g.Node("Gemm", [headIn, ModelLayout.HiddenWeight, ModelLayout.HiddenBias], [OnnxGraphBuilder.Int("transB", 1)]);
            headIn = Activation(g, config.HeadActivation, hidden, constants);
        }
        var logits = g.Node("Gemm", [headIn, ModelLayout.OutputWeight, ModelLayout.OutputBias], [OnnxGraphBuilder.Int("transB", 1)]);
        if (config.Task == TaskKind.Binary) g.Node("Sigmoid", [logits], output: Output);
        else g.Node("Softmax", [logits], [OnnxGraphBuilder.Int("axis", 1)], output: Output);

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = Producer,
            ProducerVersion = "1",
            Domain = "serverless.model",
            ModelVersion = 1,
            DocString = $"{config.Architecture} over [batch, {config.Steps} visits, {config.Features} features]",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = ConfigKey, Value = SerializeConfig(config) });
        if (metadata is not null)
        {
            foreach (var (key, value) in metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (key.StartsWith("serverless.model.", StringComparison.Ordinal))
                    throw new ArgumentException($"metadata key '{key}' is reserved", nameof(metadata));
                model.MetadataProps.Add(new StringStringEntryProto { Key = key, Value = value });
            }
        }
        return model;
    }

    /// <summary>Causal Conv1D: [N, T, F] -> [N, F, T] -> Conv(pads K-1 at the start) -> activation: [N, C, T].</summary>
    private static string Conv(OnnxGraphBuilder g, ModelConfig c, Constants k)
    {
        var nft = g.Node("Transpose", [FeaturesInput], [OnnxGraphBuilder.Ints("perm", 0, 2, 1)]);
        var conv = g.Node("Conv", [nft, ModelLayout.ConvWeight, ModelLayout.ConvBias],
        [
            OnnxGraphBuilder.Ints("kernel_shape", c.KernelSize),
            OnnxGraphBuilder.Ints("pads", c.KernelSize - 1, 0),
            OnnxGraphBuilder.Ints("strides", 1),
            OnnxGraphBuilder.Ints("dilations", 1),
            OnnxGraphBuilder.Int("group", 1),
        ]);
        return Activation(g, c.ConvActivation, conv, k);
    }

    /// <summary>The LSTM unrolled over the visits; returns the final (last real visit's) hidden state [N, H].</summary>
    private static string Lstm(OnnxGraphBuilder g, ModelConfig c, string conv, string one, Constants k)
    {
        var h = c.LstmHidden;
        var split = g.Int64Tensor("const.gate_split", h, h, h, h);
        string? hPrev = null, cPrev = null;
        for (var t = 0; t < c.Steps; t++)
        {
            var a = g.Node("Gather", [conv, g.Int64Scalar($"const.t{t}", t)], [OnnxGraphBuilder.Int("axis", 2)]);          // [N, C]
            var m = g.Node("Gather", [MaskInput, g.Int64Tensor($"const.t{t}_1d", t)], [OnnxGraphBuilder.Int("axis", 1)]); // [N, 1]
            var gates = g.Node("Gemm", [a, ModelLayout.LstmW, ModelLayout.LstmB], [OnnxGraphBuilder.Int("transB", 1)]);   // [N, 4H]
            if (hPrev is not null)
                gates = g.Node("Gemm", [hPrev, ModelLayout.LstmR, gates], [OnnxGraphBuilder.Int("transB", 1)]);
            var parts = g.NodeMulti("Split", [gates, split], 4, [OnnxGraphBuilder.Int("axis", 1)]);
            var i = Activation(g, c.GateActivation, parts[0], k);
            var o = Activation(g, c.GateActivation, parts[1], k);
            var f = Activation(g, c.GateActivation, parts[2], k);
            var cand = Activation(g, c.CellActivation, parts[3], k);
            var ig = g.Node("Mul", [i, cand]);
            var cNew = cPrev is null ? ig : g.Node("Add", [g.Node("Mul", [f, cPrev]), ig]);
            var hNew = g.Node("Mul", [o, Activation(g, c.CellActivation, cNew, k)]);
            var notM = g.Node("Sub", [one, m]);
            // h = m·h_new + (1-m)·h_prev: exact for m in {0, 1}, as the C# runtime's branch.
            var cNext = g.Node("Mul", [m, cNew]);
            var hNext = g.Node("Mul", [m, hNew]);
            if (cPrev is not null)
            {
                cNext = g.Node("Add", [cNext, g.Node("Mul", [notM, cPrev])]);
                hNext = g.Node("Add", [hNext, g.Node("Mul", [notM, hPrev!])]);
            }
            hPrev = hNext;
            cPrev = cNext;
        }
        return hPrev!;
    }

    private static string Activation(OnnxGraphBuilder g, ActivationKind kind, string x, Constants k)
    {
        switch (kind)
        {
            case ActivationKind.Identity: return g.Node("Identity", [x]);
            case ActivationKind.Relu: return g.Node("Relu", [x]);
            case ActivationKind.Sigmoid: return g.Node("Sigmoid", [x]);
            case ActivationKind.Tanh: return g.Node("Tanh", [x]);
            case ActivationKind.Square: return g.Node("Mul", [x, x]);
            case ActivationKind.PolySigmoid3:
            {
                // 0.5 + x (c1 + c3 x²), the same association as the C# runtime.
                var inner = g.Node("Add", [k.Get("poly.s1", (float)PolyCoefficients.S1), g.Node("Mul", [g.Node("Mul", [k.Get("poly.s3", (float)PolyCoefficients.S3), x]), x])]);
                return g.Node("Add", [k.Get("poly.s0", (float)PolyCoefficients.S0), g.Node("Mul", [x, inner])]);
            }
            case ActivationKind.PolyTanh3:
            {
                var inner = g.Node("Add", [k.Get("poly.h1", (float)PolyCoefficients.H1), g.Node("Mul", [g.Node("Mul", [k.Get("poly.h3", (float)PolyCoefficients.H3), x]), x])]);
                return g.Node("Mul", [x, inner]);
            }
            case ActivationKind.PolyRelu2:
            {
                var inner = g.Node("Add", [k.Get("poly.r1", (float)PolyCoefficients.R1), g.Node("Mul", [k.Get("poly.r2", (float)PolyCoefficients.R2), x])]);
                return g.Node("Add", [k.Get("poly.r0", (float)PolyCoefficients.R0), g.Node("Mul", [x, inner])]);
            }
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary>Scalar constants created once per graph.</summary>
    private sealed class Constants(OnnxGraphBuilder g)
    {
        private readonly HashSet<string> _made = [];

        public string Get(string name, float value)
        {
            if (_made.Add(name)) g.FloatScalar(name, value);
            return name;
        }
    }
}
