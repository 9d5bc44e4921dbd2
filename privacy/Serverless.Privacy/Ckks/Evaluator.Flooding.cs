using System.Security.Cryptography;
using Serverless.Privacy.Arithmetic;

namespace Serverless.Privacy.Ckks;

public sealed partial class Evaluator
{
    /// <summary>
    /// Noise flooding on the evaluator's side, before a ciphertext leaves it: adds fresh uniform noise
    /// in [−2^floodingBits, 2^floodingBits) (from RandomNumberGenerator) to every coefficient of c0,
    /// so the key owner's decryption no longer shows the evaluation noise, which depends on the
    /// circuit and its weights (IND-CPA-D, Li–Micciancio, EUROCRYPT 2021). By the flooding lemma the
    /// statistical distance between two results whose noise is at most E per coefficient is at most
    /// N·E / 2^floodingBits, so floodingBits ≥ log2(N·E) + λ_s gives λ_s statistical bits. Each bit
    /// costs precision: the slot error grows by about 2^floodingBits·sqrt(N/3)/scale (one standard deviation).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="floodingBits"/> is not in 1..60.</exception>
    /// <exception cref="ArgumentException">The ciphertext belongs to another context.</exception>
    public void FloodNoiseInPlace(Ciphertext ciphertext, int floodingBits)
    {
        ArgumentNullException.ThrowIfNull(ciphertext);
        if (!ReferenceEquals(ciphertext.Context, _context)) throw new ArgumentException("cannot FloodNoise: the ciphertext belongs to another context", nameof(ciphertext));
        if (floodingBits is < 1 or > 60) throw new ArgumentOutOfRangeException(nameof(floodingBits), floodingBits, "flooding bits must be 1..60");
        var ctx = _context;
        var n = ctx.N;
        var noise = ScratchPool.Rent(n);
        var limb = ScratchPool.Rent(n);
        try
        {
            var words = noise.AsSpan(0, n);
            RandomNumberGenerator.Fill(System.Runtime.InteropServices.MemoryMarshal.AsBytes(words));
            var mask = (1UL << (floodingBits + 1)) - 1;
            var offset = 1L << floodingBits;
            for (var i = 0; i <= ciphertext.Level; i++)
            {
                var m = ctx.Moduli[i];
                var l = limb.AsSpan(0, n);
                // The same integer noise in every limb (CRT-consistent), then to the NTT domain c0 lives in.
                for (var k = 0; k < n; k++) l[k] = m.FromSigned((long)(words[k] & mask) - offset);
                ctx.Ntt[i].Forward(l);
                LimbOps.Add(ciphertext.Limb(0, i), l, ciphertext.Limb(0, i), m.Value);
            }
            words.Clear();
        }
        finally
        {
            ScratchPool.Return(noise);
            ScratchPool.Return(limb);
        }
        // Only c0 changed: a seed still describes c1, so a fresh ciphertext keeps its half-size form.
    }
}
