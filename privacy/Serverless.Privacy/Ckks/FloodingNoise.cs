using System.Runtime.InteropServices;

namespace Serverless.Privacy.Ckks;

/// <summary>Uniform flooding noise, shared by the evaluator's result flooding and the decryptor's flooded decryption.</summary>
internal static class FloodingNoise
{
    /// <summary>
    /// Adds one fresh integer polynomial, uniform in [−2^bits, 2^bits) per coefficient (from RandomNumberGenerator),
    /// to <paramref name="poly"/> (limbs 0..level, NTT domain, contiguous). The same integer goes into every limb,
    /// so the sum stays CRT-consistent. The noise words are wiped before the scratch goes back to the pool.
    /// </summary>
    public static void AddUniform(CkksContext ctx, int level, int bits, Span<ulong> poly)
    {
        var n = ctx.N;
        System.Diagnostics.Debug.Assert(poly.Length >= (level + 1) * n);
        System.Diagnostics.Debug.Assert(bits is >= 1 and <= 60);
        var noise = ScratchPool.Rent(n);
        var limb = ScratchPool.Rent(n);
        try
        {
            var words = noise.AsSpan(0, n);
            RandomNumberGenerator.Fill(MemoryMarshal.AsBytes(words));
            var mask = (1UL << (bits + 1)) - 1;
            var offset = 1L << bits;
            for (var i = 0; i <= level; i++)
            {
                var m = ctx.Moduli[i];
                var l = limb.AsSpan(0, n);
                for (var k = 0; k < n; k++) l[k] = m.FromSigned((long)(words[k] & mask) - offset);
                ctx.Ntt[i].Forward(l);
                var target = poly.Slice(i * n, n);
                LimbOps.Add(target, l, target, m.Value);
            }
            words.Clear();
        }
        finally
        {
            ScratchPool.ReturnSecret(noise);
            ScratchPool.ReturnSecret(limb);
        }
    }
}
