namespace Serverless.Privacy.Ckks;

/// <summary>
/// A CKKS ciphertext: 2 polynomials (3 after a multiply, before relinearization) in NTT form
/// over the primes q_0 ... q_Level, with the exact scale its message is multiplied by.
/// </summary>
public sealed class Ciphertext
{
    /// <summary>An empty ciphertext to use as the destination of an operation.</summary>
    public Ciphertext(CkksContext context)
        : this(context, 2, context?.MaxLevel ?? 0, 1.0)
    {
    }

    internal Ciphertext(CkksContext context, int size, int level, double scale)
    {
        ArgumentNullException.ThrowIfNull(context);
        Context = context;
        Polys = [];
        Reshape(size, level);
        Scale = scale;
    }

    public CkksContext Context { get; }

    /// <summary>Number of primes in use minus one; a rescale lowers it by one.</summary>
    public int Level { get; private set; }

    /// <summary>The factor the encrypted message is scaled by.</summary>
    public double Scale { get; internal set; }

    /// <summary>Number of polynomials: 2, or 3 after a multiplication before relinearization.</summary>
    public int Size { get; private set; }

    internal ulong[][] Polys { get; private set; }

    /// <summary>The 32-byte seed of c1 for a fresh symmetric encryption (travels instead of c1).</summary>
    internal byte[]? Seed { get; set; }

    internal Span<ulong> Limb(int poly, int limb) => Polys[poly].AsSpan(limb * Context.N, Context.N);

    internal Span<ulong> Poly(int poly) => Polys[poly].AsSpan(0, (Level + 1) * Context.N);

    /// <summary>Sets size and level, keeping existing storage (including a spare third polynomial) when large enough.</summary>
    internal void Reshape(int size, int level)
    {
        var needed = (level + 1) * Context.N;
        if (Polys.Length < size)
        {
            var polys = new ulong[size][];
            Polys.CopyTo(polys, 0);
            Polys = polys;
        }
        for (var k = 0; k < size; k++)
            if (Polys[k] is null || Polys[k].Length < needed) Polys[k] = new ulong[needed];
        Size = size;
        Level = level;
        Seed = null;
    }

    /// <summary>Drops primes above <paramref name="level"/> (no arithmetic needed in NTT form).</summary>
    internal void DropTo(int level)
    {
        Level = level;
        Seed = null;
    }

    internal void CopyTo(Ciphertext destination)
    {
        if (ReferenceEquals(this, destination)) return;
        destination.Reshape(Size, Level);
        for (var k = 0; k < Size; k++) Poly(k).CopyTo(destination.Poly(k));
        destination.Scale = Scale;
        destination.Seed = Seed;
    }

    public Ciphertext Clone()
    {
        var c = new Ciphertext(Context, Size, Level, Scale);
        CopyTo(c);
        return c;
    }

    public override string ToString() => $"Ciphertext(size {Size}, level {Level}, scale 2^{Math.Log2(Scale):0.###})";
}
