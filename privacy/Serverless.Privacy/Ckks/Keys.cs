namespace Serverless.Privacy.Ckks;

/// <summary>
/// The ternary secret s, in NTT form over q_0 ... q_L and the special prime P. Never leaves the
/// data owner; evaluation keys (<see cref="PublicKey"/>, <see cref="RelinearizationKey"/>,
/// <see cref="GaloisKeys"/>) are separate objects that carry no secret material.
/// </summary>
public sealed class SecretKey : IDisposable
{
    private static long s_constructed;
    private static long s_deserialized;

    internal SecretKey(CkksContext context, ulong[] data)
    {
        Context = context;
        Data = data;
        Interlocked.Increment(ref s_constructed);
    }

    /// <summary>
    /// Process-wide count of secret keys ever constructed (generated, derived or deserialized: every
    /// path goes through the one constructor). A diagnostic for processes that must never hold one, such
    /// as the inference server: read it before and after server-only work and require no change.
    /// </summary>
    public static long Constructed => Interlocked.Read(ref s_constructed);

    /// <summary>Process-wide count of secret keys read by <c>CkksSerializer.LoadSecretKey</c> (a subset of <see cref="Constructed"/>).</summary>
    public static long Deserialized => Interlocked.Read(ref s_deserialized);

    internal static void CountDeserialization() => Interlocked.Increment(ref s_deserialized);

    public CkksContext Context { get; }

    /// <summary>(L + 2)·N residues: limbs 0..L then the special prime's limb.</summary>
    internal ulong[] Data { get; }

    internal ReadOnlySpan<ulong> Limb(int limb) => Data.AsSpan(limb * Context.N, Context.N);

    /// <summary>Zeroes the key material.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Data.AsSpan()));
}

/// <summary>A public encryption key (b, a) = (−a·s + e, a) over q_0 ... q_L; `a` expands from a public seed.</summary>
public sealed class PublicKey
{
    internal PublicKey(CkksContext context, ulong[] b, ulong[] a, byte[] seed)
    {
        Context = context;
        B = b;
        A = a;
        Seed = seed;
    }

    public CkksContext Context { get; }

    internal ulong[] B { get; }

    internal ulong[] A { get; }

    internal byte[] Seed { get; }
}

/// <summary>
/// A hybrid key-switching key from s' to s, one digit per prime q_j (SEAL's decomposition):
/// digit j is (b_j, a_j) over q_0 ... q_L, P with b_j = −a_j·s + e_j + P·g_j·s', where g_j ≡ 1
/// mod q_j and 0 mod the other q_i. All a_j expand from one public seed.
/// </summary>
internal sealed class KeySwitchKey
{
    public KeySwitchKey(ulong[][] b, ulong[][] a, byte[] seed)
    {
        B = b;
        A = a;
        Seed = seed;
    }

    public ulong[][] B { get; }

    public ulong[][] A { get; }

    public byte[] Seed { get; }

    public int Digits => B.Length;

    /// <summary>Domain separation for the seed expander: key-switching digit j uses domain 0x100 + j.</summary>
    public static uint Domain(int digit) => 0x100u + (uint)digit;
}

/// <summary>The key that turns a 3-polynomial product back into a 2-polynomial ciphertext (switches s² to s).</summary>
public sealed class RelinearizationKey
{
    internal RelinearizationKey(CkksContext context, KeySwitchKey key)
    {
        Context = context;
        Key = key;
    }

    public CkksContext Context { get; }

    internal KeySwitchKey Key { get; }
}

/// <summary>
/// Rotation and conjugation keys, one per Galois element (5^step mod 2N for a left rotation by
/// step; 2N − 1 for conjugation). Rotations by steps without their own key are composed from
/// the power-of-two keys present.
/// </summary>
public sealed class GaloisKeys
{
    internal GaloisKeys(CkksContext context, Dictionary<ulong, KeySwitchKey> keys)
    {
        Context = context;
        Keys = keys;
    }

    public CkksContext Context { get; }

    internal Dictionary<ulong, KeySwitchKey> Keys { get; }

    /// <summary>The Galois elements keys exist for.</summary>
    public IReadOnlyCollection<ulong> GaloisElements => Keys.Keys;

    /// <summary>True if a key for a left rotation by exactly <paramref name="step"/> exists.</summary>
    public bool HasStep(int step) => Keys.ContainsKey(Context.GaloisElementForStep(step));

    public bool HasConjugation => Keys.ContainsKey(Context.ConjugationGaloisElement);
}
