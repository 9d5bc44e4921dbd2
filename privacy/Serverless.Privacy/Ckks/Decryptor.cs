namespace Serverless.Privacy.Ckks;

/// <summary>
/// Decrypts with the secret key: m = c0 + c1·s (+ c2·s²). For results that will be shown to
/// anyone else, use <see cref="DecryptWithNoiseFlooding"/>: CKKS decryptions leak the noise, and
/// Li and Micciancio (EUROCRYPT 2021) recover the secret key from a few shared decryptions.
/// </summary>
public sealed class Decryptor
{
    private readonly CkksContext _context;
    private readonly SecretKey _secretKey;

    public Decryptor(CkksContext context, SecretKey secretKey)
    {
        _context = CkksContext.ForKey(context, secretKey?.Context, "the secret key", nameof(secretKey));
        _secretKey = secretKey!; // ForKey refused null
    }

    public Plaintext Decrypt(Ciphertext ciphertext)
    {
        var pt = new Plaintext(_context);
        Decrypt(ciphertext, pt);
        return pt;
    }

    /// <summary>Decrypts into <paramref name="destination"/> (same level and scale as the ciphertext).</summary>
    public void Decrypt(Ciphertext ciphertext, Plaintext destination)
    {
        ArgumentNullException.ThrowIfNull(ciphertext);
        ArgumentNullException.ThrowIfNull(destination);
        _context.RequireOwned(ciphertext.Context, "cannot Decrypt: the ciphertext", nameof(ciphertext));
        _context.RequireOwned(destination.Context, "cannot Decrypt: the destination", nameof(destination));
        var ctx = _context;
        var n = ctx.N;
        var level = ciphertext.Level;
        destination.Reshape(level);
        destination.Scale = ciphertext.Scale;
        ctx.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
        {
            var m = ctx.Moduli[i];
            var q = m.Value;
            var s = _secretKey.Limb(i);
            var c0 = ciphertext.Limb(0, i);
            var c1 = ciphertext.Limb(1, i);
            var dst = destination.Limb(i);
            if (ciphertext.Size == 2)
            {
                for (var k = 0; k < n; k++)
                {
                    var x = c0[k] + m.Mul(c1[k], s[k]);
                    dst[k] = Modulus.SubIfGe(x, q);
                }
            }
            else
            {
                // Horner: ((c2·s) + c1)·s + c0
                var c2 = ciphertext.Limb(2, i);
                for (var k = 0; k < n; k++)
                {
                    var x = m.Mul(c2[k], s[k]) + c1[k];
                    x = Modulus.SubIfGe(x, q);
                    x = m.Mul(x, s[k]) + c0[k];
                    dst[k] = Modulus.SubIfGe(x, q);
                }
            }
        });
    }

    /// <summary>
    /// Decrypts and adds fresh uniform noise in [−2^floodingBits, 2^floodingBits] to every
    /// coefficient, so the result no longer reveals the ciphertext noise (IND-CPA-D, Li–Micciancio
    /// 2021). The noise must dwarf the ciphertext's own noise; each flooding bit costs a bit of
    /// precision: the slot error grows by about 2^floodingBits·sqrt(N)/scale.
    /// </summary>
    /// <param name="floodingBits">log2 of the flooding bound; 0 picks log2(scale) − 20 (about 20 bits of precision remain).</param>
    public void DecryptWithNoiseFlooding(Ciphertext ciphertext, Plaintext destination, int floodingBits = 0)
    {
        Decrypt(ciphertext, destination);
        if (floodingBits == 0) floodingBits = Math.Max(8, (int)Math.Floor(Math.Log2(ciphertext.Scale)) - 20);
        if (floodingBits < 1 || floodingBits > 60) throw new ArgumentOutOfRangeException(nameof(floodingBits), floodingBits, "flooding bits must be 1..60");
        FloodingNoise.AddUniform(_context, destination.Level, floodingBits, destination.Poly);
    }
}
