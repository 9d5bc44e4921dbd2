namespace Serverless.Privacy.Arithmetic;

/// <summary>Deterministic primality and NTT-friendly prime generation for 64-bit moduli.</summary>
internal static class Primes
{
    // Miller-Rabin with the first 12 primes as bases is deterministic below 3.3·10^24
    // (Sorenson and Webster 2015), which covers every 64-bit integer.
    private static readonly ulong[] s_bases = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];

    public static bool IsPrime(ulong n)
    {
        if (n < 2) return false;
        foreach (var p in s_bases)
        {
            if (n == p) return true;
            if (n % p == 0) return false;
        }
        var d = n - 1;
        var s = 0;
        while ((d & 1) == 0) { d >>= 1; s++; }
        foreach (var a in s_bases)
        {
            var x = PowMod(a, d, n);
            if (x == 1 || x == n - 1) continue;
            var composite = true;
            for (var r = 1; r < s; r++)
            {
                x = MulMod(x, x, n);
                if (x == n - 1) { composite = false; break; }
            }
            if (composite) return false;
        }
        return true;
    }

    /// <summary>
    /// The <paramref name="count"/> largest primes of exactly <paramref name="bits"/> bits with
    /// q ≡ 1 (mod 2N), skipping any in <paramref name="exclude"/>. Deterministic: the same
    /// arguments always give the same primes, so parameters need only record bit sizes.
    /// </summary>
    public static ulong[] NttFriendly(int bits, int count, int n, IReadOnlyCollection<ulong> exclude)
    {
        if (bits < 20 || bits > 61) throw new ArgumentOutOfRangeException(nameof(bits), bits, "prime sizes must be 20..61 bits");
        var step = 2UL * (ulong)n;
        var candidate = (1UL << bits) - step + 1;
        var low = 1UL << (bits - 1);
        var result = new List<ulong>(count);
        while (result.Count < count)
        {
            if (candidate <= low) throw new ArgumentException($"not enough {bits}-bit primes congruent to 1 mod {step}");
            if (!exclude.Contains(candidate) && IsPrime(candidate)) result.Add(candidate);
            candidate -= step;
        }
        return [.. result];
    }

    /// <summary>The smallest primitive 2N-th root of unity modulo the prime q (q ≡ 1 mod 2N).</summary>
    public static ulong MinimalPrimitiveRoot(ulong q, int twoN)
    {
        var m = new Modulus(q);
        var exponent = (q - 1) / (ulong)twoN;
        ulong best = 0;
        // A root ψ has order exactly 2N iff ψ^N = -1. Every primitive root is g^k for odd k, so
        // we find one and scan its odd powers for the smallest.
        for (ulong x = 2; x < q; x++)
        {
            var g = m.Pow(x, exponent);
            if (m.Pow(g, (ulong)twoN / 2) != q - 1) continue;
            var g2 = m.Mul(g, g);
            var current = g;
            best = g;
            for (var k = 1; k < twoN / 2; k++)
            {
                current = m.Mul(current, g2);
                if (current < best) best = current;
            }
            return best;
        }
        throw new ArgumentException($"{q} has no primitive {twoN}-th root of unity");
    }

    private static ulong MulMod(ulong a, ulong b, ulong n) => (ulong)((UInt128)a * b % n);

    private static ulong PowMod(ulong a, ulong e, ulong n)
    {
        ulong result = 1, b = a % n;
        while (e != 0)
        {
            if ((e & 1) != 0) result = MulMod(result, b, n);
            b = MulMod(b, b, n);
            e >>= 1;
        }
        return result;
    }
}
