using System.Buffers.Binary;
using Google.Protobuf;
using Serverless.Model.Onnx.Proto;

namespace Serverless.Model.Onnx;

/// <summary>A model read back from an ONNX file written by <see cref="OnnxExporter"/>.</summary>
public sealed record OnnxModel(ModelConfig Config, float[] Parameters, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>A runtime for the model; pass <see cref="Parameters"/> to its methods.</summary>
    public CnnLstm CreateModel() => new(Config);
}

/// <summary>
/// Reads ONNX files written by <see cref="OnnxExporter"/> back into the C# runtime. Everything read is
/// validated: protobuf well-formedness, IR version and opset, the config in metadata, every weight tensor's
/// type, shape, encoding and finiteness, and finally the whole graph, which must be exactly the graph the
/// exporter writes for that config (so a file whose nodes were edited is refused, not misread).
/// </summary>
public static class OnnxImporter
{
    /// <summary>Refuse files larger than this before parsing (a CNN-LSTM of sane size is far smaller).</summary>
    public const int MaxBytes = 256 * 1024 * 1024;

    public static OnnxModel LoadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"ONNX file not found: {path}", path);
        if (info.Length > MaxBytes) throw new InvalidDataException($"ONNX: {path} is {info.Length} bytes, over the {MaxBytes} byte limit");
        return Load(File.ReadAllBytes(path));
    }

    public static OnnxModel Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + read > MaxBytes) throw new InvalidDataException($"ONNX: stream is over the {MaxBytes} byte limit");
            buffer.Write(chunk, 0, read);
        }
        return Load(buffer.ToArray());
    }

    public static OnnxModel Load(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0) throw new InvalidDataException("ONNX: file is empty");
        if (bytes.Length > MaxBytes) throw new InvalidDataException($"ONNX: {bytes.Length} bytes, over the {MaxBytes} byte limit");
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"ONNX: not a valid ModelProto ({e.Message})", e);
        }

        if (model.IrVersion != OnnxExporter.IrVersion)
            throw new InvalidDataException($"ONNX: IR version {model.IrVersion}, expected {OnnxExporter.IrVersion}");
        if (model.OpsetImport.Count != 1 || model.OpsetImport[0].Domain != "" || model.OpsetImport[0].Version != OnnxExporter.Opset)
            throw new InvalidDataException($"ONNX: expected exactly the default-domain opset {OnnxExporter.Opset}");
        if (model.Graph is null) throw new InvalidDataException("ONNX: the model has no graph");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in model.MetadataProps)
            if (!metadata.TryAdd(entry.Key, entry.Value)) throw new InvalidDataException($"ONNX: metadata key '{entry.Key}' appears twice");
        if (!metadata.Remove(OnnxExporter.ConfigKey, out var configJson))
            throw new InvalidDataException($"ONNX: metadata '{OnnxExporter.ConfigKey}' is missing (not written by this exporter)");
        ModelConfig config;
        try
        {
            config = OnnxExporter.DeserializeConfig(configJson).Validated();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or ArgumentException or NotSupportedException)
        {
            throw new InvalidDataException($"ONNX: model config is invalid ({e.Message})", e);
        }

        var layout = ModelLayout.Build(config);
        var parameters = new float[layout.TotalLength];
        var initializers = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        foreach (var t in model.Graph.Initializer)
            if (!initializers.TryAdd(t.Name, t)) throw new InvalidDataException($"ONNX: initializer '{t.Name}' appears twice");
        foreach (var view in layout.Views)
        {
            if (!initializers.TryGetValue(view.Name, out var tensor)) throw new InvalidDataException($"ONNX: weight tensor '{view.Name}' is missing");
            ReadFloats(tensor, view, parameters.AsSpan(view.Offset, view.Length));
        }

        // The graph must be exactly the one the exporter writes for this config and these weights.
        var expected = OnnxExporter.Build(config, parameters, metadata).Graph;
        CompareGraphs(expected, model.Graph, layout.Views.Select(v => v.Name).ToHashSet(StringComparer.Ordinal));
        return new OnnxModel(config, parameters, metadata);
    }

    private static void ReadFloats(TensorProto t, ParameterView view, Span<float> destination)
    {
        if (t.DataType != (int)TensorProto.Types.DataType.Float)
            throw new InvalidDataException($"ONNX: '{view.Name}' has data type {t.DataType}, expected FLOAT (1)");
        if (t.DataLocation != TensorProto.Types.DataLocation.Default || t.ExternalData.Count > 0)
            throw new InvalidDataException($"ONNX: '{view.Name}' uses external data, which is not supported");
        if (t.Segment is not null) throw new InvalidDataException($"ONNX: '{view.Name}' is segmented, which is not supported");
        if (t.Dims.Count != view.Shape.Count) throw new InvalidDataException($"ONNX: '{view.Name}' has rank {t.Dims.Count}, expected {view.Shape.Count}");
        for (var i = 0; i < view.Shape.Count; i++)
            if (t.Dims[i] != view.Shape[i])
                throw new InvalidDataException($"ONNX: '{view.Name}' has shape [{string.Join(", ", t.Dims)}], expected [{string.Join(", ", view.Shape)}]");
        if (t.RawData.Length > 0)
        {
            if (t.FloatData.Count > 0) throw new InvalidDataException($"ONNX: '{view.Name}' has both raw_data and float_data");
            if (t.RawData.Length != destination.Length * sizeof(float))
                throw new InvalidDataException($"ONNX: '{view.Name}' has {t.RawData.Length} raw bytes, expected {destination.Length * sizeof(float)}");
            var raw = t.RawData.Span;
            for (var i = 0; i < destination.Length; i++) destination[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * 4));
        }
        else
        {
            if (t.FloatData.Count != destination.Length)
                throw new InvalidDataException($"ONNX: '{view.Name}' has {t.FloatData.Count} values, expected {destination.Length}");
            for (var i = 0; i < destination.Length; i++) destination[i] = t.FloatData[i];
        }
        foreach (var v in destination)
            if (!float.IsFinite(v)) throw new InvalidDataException($"ONNX: '{view.Name}' contains NaN or infinity");
    }

    private static void CompareGraphs(GraphProto expected, GraphProto actual, HashSet<string> weights)
    {
        if (actual.Input.Count != expected.Input.Count || !actual.Input.SequenceEqual(expected.Input))
            throw new InvalidDataException("ONNX: graph inputs differ from the exported model's (features [batch, T, F], mask [batch, T])");
        if (!actual.Output.SequenceEqual(expected.Output))
            throw new InvalidDataException("ONNX: graph outputs differ from the exported model's (probabilities [batch, outputs])");
        if (actual.Node.Count != expected.Node.Count)
            throw new InvalidDataException($"ONNX: graph has {actual.Node.Count} nodes, the exporter writes {expected.Node.Count} for this config");
        for (var i = 0; i < expected.Node.Count; i++)
            if (!actual.Node[i].Equals(expected.Node[i]))
                throw new InvalidDataException($"ONNX: node {i} ('{actual.Node[i].Name}', {actual.Node[i].OpType}) differs from the exported model's ('{expected.Node[i].Name}', {expected.Node[i].OpType})");
        if (actual.Initializer.Count != expected.Initializer.Count)
            throw new InvalidDataException($"ONNX: graph has {actual.Initializer.Count} initializers, expected {expected.Initializer.Count}");
        var byName = actual.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var t in expected.Initializer)
        {
            if (!byName.TryGetValue(t.Name, out var a)) throw new InvalidDataException($"ONNX: initializer '{t.Name}' is missing");
            if (weights.Contains(t.Name)) continue; // weights were validated by ReadFloats and the expected graph was built from them
            if (!a.Equals(t)) throw new InvalidDataException($"ONNX: initializer '{t.Name}' differs from the exported model's");
        }
        if (actual.ValueInfo.Count > 0) throw new InvalidDataException("ONNX: unexpected value_info entries");
    }
}
