using Google.Protobuf;
using Serverless.Model.Onnx.Proto;

namespace Serverless.Model.Onnx;

/// <summary>Small helper that appends nodes with unique names and SSA value names to a <see cref="GraphProto"/>.</summary>
internal sealed class OnnxGraphBuilder
{
    private readonly GraphProto _graph;
    private int _counter;

    public OnnxGraphBuilder(GraphProto graph) => _graph = graph;

    public string Node(string opType, string[] inputs, IEnumerable<AttributeProto>? attributes = null, string? output = null)
    {
        var id = _counter++;
        var name = output ?? $"{opType.ToLowerInvariant()}_{id}";
        var node = new NodeProto { OpType = opType, Name = $"n{id}_{opType}" };
        node.Input.AddRange(inputs);
        node.Output.Add(name);
        if (attributes is not null) node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return name;
    }

    /// <summary>A node with several outputs (Split).</summary>
    public string[] NodeMulti(string opType, string[] inputs, int outputs, IEnumerable<AttributeProto>? attributes = null)
    {
        var id = _counter++;
        var node = new NodeProto { OpType = opType, Name = $"n{id}_{opType}" };
        node.Input.AddRange(inputs);
        var names = new string[outputs];
        for (var i = 0; i < outputs; i++)
        {
            names[i] = $"{opType.ToLowerInvariant()}_{id}_{i}";
            node.Output.Add(names[i]);
        }
        if (attributes is not null) node.Attribute.AddRange(attributes);
        _graph.Node.Add(node);
        return names;
    }

    public string FloatTensor(string name, IReadOnlyList<int> dims, ReadOnlySpan<float> values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        foreach (var d in dims) t.Dims.Add(d);
        var bytes = new byte[values.Length * sizeof(float)];
        for (var i = 0; i < values.Length; i++)
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        t.RawData = ByteString.CopyFrom(bytes);
        _graph.Initializer.Add(t);
        return name;
    }

    public string FloatScalar(string name, float value) => FloatTensor(name, [], [value]);

    public string Int64Tensor(string name, params long[] values)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        _graph.Initializer.Add(t);
        return name;
    }

    public string Int64Scalar(string name, long value)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64 };
        t.Int64Data.Add(value);
        _graph.Initializer.Add(t);
        return name;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static ValueInfoProto FloatInput(string name, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d is string p ? new TensorShapeProto.Types.Dimension { DimParam = p } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
