namespace Serverless.Model.Nn;

/// <summary>One named tensor inside the flat parameter vector.</summary>
public sealed record ParameterView(string Name, int Offset, IReadOnlyList<int> Shape)
{
    public int Length
    {
        get
        {
            var n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }
}

/// <summary>
/// Where each weight tensor lives in the model's single flat <c>float[]</c> parameter vector (row-major
/// views, no gaps). Federation code averages, clips, masks and quantizes the flat vector; code that
/// needs structure looks a tensor up by name.
/// </summary>
public sealed class ParameterLayout
{
    private readonly Dictionary<string, ParameterView> _byName;

    internal ParameterLayout(IReadOnlyList<(string Name, int[] Shape)> tensors)
    {
        var views = new List<ParameterView>(tensors.Count);
        _byName = new Dictionary<string, ParameterView>(StringComparer.Ordinal);
        var offset = 0;
        foreach (var (name, shape) in tensors)
        {
            var view = new ParameterView(name, offset, shape);
            views.Add(view);
            _byName.Add(name, view);
            offset = checked(offset + view.Length);
        }
        Views = views;
        TotalLength = offset;
    }

    public IReadOnlyList<ParameterView> Views { get; }

    /// <summary>Length of the flat parameter vector.</summary>
    public int TotalLength { get; }

    public ParameterView this[string name] =>
        _byName.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no parameter tensor named '{name}'");

    public bool Contains(string name) => _byName.ContainsKey(name);

    public Span<float> Slice(Span<float> parameters, string name)
    {
        var v = this[name];
        if (parameters.Length != TotalLength) throw new ArgumentException($"parameter vector has {parameters.Length} entries, layout {TotalLength}");
        return parameters.Slice(v.Offset, v.Length);
    }

    public ReadOnlySpan<float> Slice(ReadOnlySpan<float> parameters, string name)
    {
        var v = this[name];
        if (parameters.Length != TotalLength) throw new ArgumentException($"parameter vector has {parameters.Length} entries, layout {TotalLength}");
        return parameters.Slice(v.Offset, v.Length);
    }
}
