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
        _context.RequireOwned(ciphertext.Context, "cannot FloodNoise: the ciphertext", nameof(ciphertext));
        if (floodingBits is < 1 or > 60) throw new ArgumentOutOfRangeException(nameof(floodingBits), floodingBits, "flooding bits must be 1..60");
        FloodingNoise.AddUniform(_context, ciphertext.Level, floodingBits, ciphertext.Poly(0));
        // Only c0 changed: a seed still describes c1, so a fresh ciphertext keeps its half-size form.
    }
}
