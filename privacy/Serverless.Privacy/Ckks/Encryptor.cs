namespace Serverless.Privacy.Ckks;

/// <summary>
/// Encrypts plaintexts under a public key, or under the secret key (symmetric encryption, whose
/// c1 is the expansion of a fresh public seed, so the ciphertext serializes at half size).
/// Masks and errors come from <see cref="System.Security.Cryptography.RandomNumberGenerator"/>.
/// </summary>
public sealed class Encryptor
{
    internal const uint SymmetricDomain = 2;

    private readonly CkksContext _context;
    private readonly PublicKey? _publicKey;
    private readonly SecretKey? _secretKey;

    public Encryptor(CkksContext context, PublicKey publicKey)
    {
        _context = CkksContext.ForKey(context, publicKey?.Context, "the public key", nameof(publicKey));
        _publicKey = publicKey;
    }

    /// <summary>Symmetric encryption with the secret key (for data owners; ciphertexts travel seeded).</summary>
    public Encryptor(CkksContext context, SecretKey secretKey)
    {
        _context = CkksContext.ForKey(context, secretKey?.Context, "the secret key", nameof(secretKey));
        _secretKey = secretKey;
    }

    public Ciphertext Encrypt(Plaintext plaintext)
    {
        var ct = new Ciphertext(_context);
        Encrypt(plaintext, ct);
        return ct;
    }

    /// <summary>Encrypts <paramref name="plaintext"/> into <paramref name="destination"/> at the plaintext's level and scale.</summary>
    public void Encrypt(Plaintext plaintext, Ciphertext destination)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentNullException.ThrowIfNull(destination);
        _context.RequireOwned(plaintext.Context, "cannot Encrypt: the plaintext", nameof(plaintext));
        _context.RequireOwned(destination.Context, "cannot Encrypt: the destination", nameof(destination));
        var ctx = _context;
        var n = ctx.N;
        var level = plaintext.Level;
        destination.Reshape(2, level);
        destination.Scale = plaintext.Scale;
        var small = ArrayPool<sbyte>.Shared.Rent(3 * n);
        try
        {
            var u = small.AsMemory(0, n);
            var e0 = small.AsMemory(n, n);
            var e1 = small.AsMemory(2 * n, n);
            if (_publicKey is { } pk)
            {
                Sampling.Ternary(u.Span);
                Sampling.Error(e0.Span);
                Sampling.Error(e1.Span);
                ctx.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
                {
                    var m = ctx.Moduli[i];
                    var q = m.Value;
                    var ntt = ctx.Ntt[i];
                    var scratch = ScratchPool.Rent(n);
                    try
                    {
                        var ui = scratch.AsSpan(0, n);
                        Sampling.SmallToLimb(u.Span, ui, q);
                        ntt.Forward(ui);
                        var c0 = destination.Limb(0, i);
                        var c1 = destination.Limb(1, i);
                        Sampling.SmallToLimb(e0.Span, c0, q);
                        Sampling.SmallToLimb(e1.Span, c1, q);
                        ntt.Forward(c0);
                        ntt.Forward(c1);
                        var b = pk.B.AsSpan(i * n, n);
                        var a = pk.A.AsSpan(i * n, n);
                        var msg = plaintext.Limb(i);
                        for (var k = 0; k < n; k++)
                        {
                            var x = c0[k] + msg[k];
                            x = Modulus.SubIfGe(x, q);
                            x += m.Mul(b[k], ui[k]);
                            c0[k] = Modulus.SubIfGe(x, q);
                            var y = c1[k] + m.Mul(a[k], ui[k]);
                            c1[k] = Modulus.SubIfGe(y, q);
                        }
                    }
                    finally { ScratchPool.ReturnSecret(scratch); }
                });
            }
            else
            {
                var sk = _secretKey!;
                var seed = Sampling.NewSeed();
                Sampling.Error(e0.Span);
                ctx.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
                {
                    var m = ctx.Moduli[i];
                    var q = m.Value;
                    var c0 = destination.Limb(0, i);
                    var c1 = destination.Limb(1, i);
                    UniformExpander.Expand(seed, SymmetricDomain, i, q, c1);
                    Sampling.SmallToLimb(e0.Span, c0, q);
                    ctx.Ntt[i].Forward(c0);
                    var s = sk.Limb(i);
                    var msg = plaintext.Limb(i);
                    for (var k = 0; k < n; k++)
                    {
                        var x = c0[k] + msg[k];
                        x = Modulus.SubIfGe(x, q);
                        c0[k] = m.Sub(x, m.Mul(c1[k], s[k]));
                    }
                });
                destination.Seed = seed;
            }
        }
        finally
        {
            small.AsSpan(0, 3 * n).Clear();
            ArrayPool<sbyte>.Shared.Return(small);
        }
    }
}
