namespace Serverless.Privacy.Ckks;

/// <summary>An encoded message: one polynomial in NTT form over q_0 ... q_Level, with its scale.</summary>
public sealed class Plaintext
{
    /// <summary>An empty plaintext to use as a destination.</summary>
    public Plaintext(CkksContext context)
        : this(context, context?.MaxLevel ?? 0, 1.0)
    {
    }

    internal Plaintext(CkksContext context, int level, double scale)
    {
        ArgumentNullException.ThrowIfNull(context);
        Context = context;
        Data = [];
        Reshape(level);
        Scale = scale;
    }

    public CkksContext Context { get; }

    public int Level { get; private set; }

    public double Scale { get; internal set; }

    internal ulong[] Data { get; private set; }

    internal Span<ulong> Limb(int limb) => Data.AsSpan(limb * Context.N, Context.N);

    internal Span<ulong> Poly => Data.AsSpan(0, (Level + 1) * Context.N);

    internal void Reshape(int level)
    {
        var needed = (level + 1) * Context.N;
        if (Data.Length < needed) Data = new ulong[needed];
        Level = level;
    }

    public override string ToString() => $"Plaintext(level {Level}, scale 2^{Math.Log2(Scale):0.###})";
}
