using System.Buffers.Binary;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// Shamir t-of-n secret sharing (Shamir 1979) over the prime field GF(2^61 - 1).
/// A byte secret is cut into 7-byte chunks, each shared with its own random polynomial of degree
/// t - 1, so a share is 8 bytes per chunk. The Mersenne prime keeps multiplication to one 128-bit
/// product and two folds, which matters when the server reconstructs hundreds of secrets.
/// Share x-coordinates are the participants' ids (1..2^31-1, never 0, which holds the secret).
/// </summary>
public static class ShamirSecretSharing
{
    /// <summary>The field modulus p = 2^61 - 1.</summary>
    public const ulong Prime = (1UL << 61) - 1;

    private const int ChunkBytes = 7;

    /// <summary>Share length in bytes for a secret of <paramref name="secretLength"/> bytes.</summary>
    public static int ShareLength(int secretLength) => ChunkCount(secretLength) * 8;

    private static int ChunkCount(int secretLength) => (secretLength + ChunkBytes - 1) / ChunkBytes;

    /// <summary>Splits <paramref name="secret"/> into one share per x in <paramref name="xs"/>;
    /// any <paramref name="threshold"/> of them recover it, fewer reveal nothing.</summary>
    /// <exception cref="ArgumentException">threshold out of [1, xs.Length], or an x is not positive or repeats.</exception>
    public static byte[][] Split(ReadOnlySpan<byte> secret, int threshold, ReadOnlySpan<int> xs)
    {
        if (secret.IsEmpty) throw new ArgumentException("Secret is empty.", nameof(secret));
        if (threshold < 1 || threshold > xs.Length)
            throw new ArgumentException($"Threshold {threshold} must be in [1, {xs.Length}].", nameof(threshold));
        ValidateXs(xs);
        var chunks = ChunkCount(secret.Length);
        var shares = new byte[xs.Length][];
        for (var i = 0; i < shares.Length; i++) shares[i] = new byte[chunks * 8];
        Span<ulong> coeffs = threshold <= 512 ? stackalloc ulong[threshold] : new ulong[threshold];
        Span<byte> chunk = stackalloc byte[8];
        for (var c = 0; c < chunks; c++)
        {
            chunk.Clear();
            var start = c * ChunkBytes;
            secret.Slice(start, Math.Min(ChunkBytes, secret.Length - start)).CopyTo(chunk);
            coeffs[0] = BinaryPrimitives.ReadUInt64LittleEndian(chunk);
            for (var k = 1; k < threshold; k++) coeffs[k] = RandomFieldElement();
            for (var i = 0; i < xs.Length; i++)
            {
                // Horner evaluation at x.
                var x = (ulong)xs[i];
                ulong y = 0;
                for (var k = threshold - 1; k >= 0; k--) y = Add(Mul(y, x), coeffs[k]);
                BinaryPrimitives.WriteUInt64LittleEndian(shares[i].AsSpan(c * 8), y);
            }
        }
        coeffs.Clear();
        return shares;
    }

    /// <summary>Lagrange coefficients that evaluate the polynomial through points at
    /// <paramref name="xs"/> at zero; computed once and reused for every secret shared among the same holders.</summary>
    public static ulong[] LagrangeAtZero(ReadOnlySpan<int> xs)
    {
        ValidateXs(xs);
        return LagrangeAt(xs, 0);
    }

    internal static ulong[] LagrangeAt(ReadOnlySpan<int> xs, ulong at)
    {
        var lambdas = new ulong[xs.Length];
        for (var i = 0; i < xs.Length; i++)
        {
            ulong num = 1, den = 1;
            var xi = (ulong)xs[i];
            for (var j = 0; j < xs.Length; j++)
            {
                if (j == i) continue;
                var xj = (ulong)xs[j];
                num = Mul(num, Sub(at, xj));
                den = Mul(den, Sub(xi, xj));
            }
            lambdas[i] = Mul(num, Inverse(den));
        }
        return lambdas;
    }

    /// <summary>Recovers a secret of <paramref name="secretLength"/> bytes from shares whose
    /// x-coordinates gave <paramref name="lambdas"/> (see <see cref="LagrangeAtZero"/>).</summary>
    /// <exception cref="ArgumentException">counts or share lengths disagree, or a share holds a value outside the field.</exception>
    public static byte[] Combine(ReadOnlySpan<ulong> lambdas, IReadOnlyList<byte[]> shares, int secretLength)
    {
        if (shares.Count != lambdas.Length) throw new ArgumentException("One share per Lagrange coefficient is required.", nameof(shares));
        var chunks = ChunkCount(secretLength);
        var secret = new byte[secretLength];
        Span<byte> chunk = stackalloc byte[8];
        for (var c = 0; c < chunks; c++)
        {
            ulong s = 0;
            for (var i = 0; i < shares.Count; i++)
            {
                var share = shares[i];
                if (share.Length != chunks * 8) throw new ArgumentException($"Share {i} has {share.Length} bytes, expected {chunks * 8}.", nameof(shares));
                var y = BinaryPrimitives.ReadUInt64LittleEndian(share.AsSpan(c * 8));
                if (y >= Prime) throw new ArgumentException($"Share {i} holds a value outside GF(2^61-1).", nameof(shares));
                s = Add(s, Mul(lambdas[i], y));
            }
            BinaryPrimitives.WriteUInt64LittleEndian(chunk, s);
            var start = c * ChunkBytes;
            var len = Math.Min(ChunkBytes, secretLength - start);
            // A chunk holds 56 bits; anything above them means the shares were not of one polynomial.
            if ((s >> (8 * len)) != 0) throw new ArgumentException("Shares are inconsistent: reconstructed chunk exceeds its width.", nameof(shares));
            chunk[..len].CopyTo(secret.AsSpan(start));
        }
        return secret;
    }

    /// <summary>Recovers a secret from (x, share) pairs; convenience over <see cref="LagrangeAtZero"/> + <see cref="Combine"/>.</summary>
    public static byte[] Combine(ReadOnlySpan<int> xs, IReadOnlyList<byte[]> shares, int secretLength) =>
        Combine(LagrangeAtZero(xs), shares, secretLength);

    /// <summary>
    /// Recovers a secret from shares of which some may be wrong: Berlekamp–Welch decoding of the Reed–Solomon code
    /// that Shamir shares form (McEliece and Sarwate 1981; Welch and Berlekamp, US 4,633,470), chunk by chunk. With s
    /// shares of a degree t − 1 polynomial it corrects up to floor((s − t) / 2) wrong ones, wherever they sit, where trying
    /// windows of t shares finds a clean set only by luck. Null when there are more errors than that; otherwise the secret
    /// and the indices of the shares that are off the polynomial.
    /// </summary>
    internal static byte[]? DecodeWithErrors(ReadOnlySpan<int> xs, IReadOnlyList<byte[]> shares, int threshold, int secretLength, out int[] wrong)
    {
        wrong = [];
        ValidateXs(xs);
        var n = xs.Length;
        if (shares.Count != n || threshold < 1 || n < threshold) return null;
        var chunks = ChunkCount(secretLength);
        foreach (var share in shares) if (share.Length != chunks * 8) return null;
        var errors = (n - threshold) / 2;
        var secret = new byte[secretLength];
        var bad = new SortedSet<int>();
        var ys = new ulong[n];
        Span<byte> chunk = stackalloc byte[8];
        for (var c = 0; c < chunks; c++)
        {
            for (var i = 0; i < n; i++) ys[i] = BinaryPrimitives.ReadUInt64LittleEndian(shares[i].AsSpan(c * 8)) % Prime;
            var p = WelchBerlekamp(xs, ys, threshold, errors);
            if (p is null) return null;
            var agree = 0;
            for (var i = 0; i < n; i++)
            {
                if (Evaluate(p, (ulong)xs[i]) == ys[i]) agree++;
                else bad.Add(i);
            }
            if (agree < n - errors) return null;
            BinaryPrimitives.WriteUInt64LittleEndian(chunk, p[0]);
            var start = c * ChunkBytes;
            var len = Math.Min(ChunkBytes, secretLength - start);
            if ((p[0] >> (8 * len)) != 0) return null;
            chunk[..len].CopyTo(secret.AsSpan(start));
        }
        wrong = [.. bad];
        return secret;
    }

    /// <summary>The polynomial of degree below <paramref name="t"/> through all but at most <paramref name="e"/> of the points, or null.</summary>
    private static ulong[]? WelchBerlekamp(ReadOnlySpan<int> xs, ulong[] ys, int t, int e)
    {
        // Unknowns: E = x^e + E_{e-1} x^{e-1} + ... + E_0 (the error locator) and Q of degree < e + t, with Q(x_i) = y_i E(x_i).
        var n = xs.Length;
        var columns = 2 * e + t;
        var m = new ulong[n, columns + 1];
        for (var i = 0; i < n; i++)
        {
            var x = (ulong)xs[i] % Prime;
            ulong power = 1;
            for (var k = 0; k < e + t; k++)
            {
                m[i, k] = power;                                   // Q's coefficient k
                if (k < e) m[i, e + t + k] = Sub(0, Mul(ys[i], power)); // -y_i x^k for E_k
                if (k == e) m[i, columns] = Mul(ys[i], power);     // the monic term moves right: y_i x^e
                power = Mul(power, x);
            }
        }
        var pivotOf = new int[columns];
        Array.Fill(pivotOf, -1);
        var row = 0;
        for (var col = 0; col < columns && row < n; col++)
        {
            var pivot = -1;
            for (var r = row; r < n; r++) if (m[r, col] != 0) { pivot = r; break; }
            if (pivot < 0) continue;
            if (pivot != row)
                for (var k = col; k <= columns; k++) (m[row, k], m[pivot, k]) = (m[pivot, k], m[row, k]);
            var inv = Inverse(m[row, col]);
            for (var k = col; k <= columns; k++) m[row, k] = Mul(m[row, k], inv);
            for (var r = 0; r < n; r++)
            {
                if (r == row || m[r, col] == 0) continue;
                var f = m[r, col];
                for (var k = col; k <= columns; k++) m[r, k] = Sub(m[r, k], Mul(f, m[row, k]));
            }
            pivotOf[col] = row++;
        }
        for (var r = row; r < n; r++) if (m[r, columns] != 0) return null;   // inconsistent: too many errors
        var solution = new ulong[columns];                                      // free unknowns stay 0: any solution gives Q / E = P
        for (var col = 0; col < columns; col++) if (pivotOf[col] >= 0) solution[col] = m[pivotOf[col], columns];

        // P = Q / E by long division; the remainder must vanish and P's degree stay below t.
        var q = solution[..(e + t)];
        var locator = new ulong[e + 1];
        for (var k = 0; k < e; k++) locator[k] = solution[e + t + k];
        locator[e] = 1;
        var quotient = new ulong[t];
        for (var d = e + t - 1; d >= e; d--)
        {
            var coefficient = q[d];
            quotient[d - e] = coefficient;
            if (coefficient == 0) continue;
            for (var k = 0; k <= e; k++) q[d - e + k] = Sub(q[d - e + k], Mul(coefficient, locator[k]));
        }
        for (var k = 0; k < e; k++) if (q[k] != 0) return null;
        return quotient;
    }

    private static ulong Evaluate(ulong[] coefficients, ulong x)
    {
        ulong y = 0;
        for (var k = coefficients.Length - 1; k >= 0; k--) y = Add(Mul(y, x % Prime), coefficients[k]);
        return y;
    }

    /// <summary>True when the share at <paramref name="x"/> lies on the polynomial through the given points.</summary>
    internal static bool IsOnPolynomial(ReadOnlySpan<int> xs, IReadOnlyList<byte[]> shares, int x, byte[] share)
    {
        var lambdas = LagrangeAt(xs, (ulong)x);
        var chunks = share.Length / 8;
        for (var c = 0; c < chunks; c++)
        {
            ulong s = 0;
            for (var i = 0; i < shares.Count; i++)
            {
                var y = BinaryPrimitives.ReadUInt64LittleEndian(shares[i].AsSpan(c * 8));
                s = Add(s, Mul(lambdas[i], y % Prime));
            }
            if (s != BinaryPrimitives.ReadUInt64LittleEndian(share.AsSpan(c * 8))) return false;
        }
        return true;
    }

    /// <summary>True when every 8-byte word of <paramref name="share"/> is a field element.</summary>
    public static bool IsWellFormed(ReadOnlySpan<byte> share, int secretLength)
    {
        if (share.Length != ShareLength(secretLength)) return false;
        for (var c = 0; c < share.Length; c += 8)
            if (BinaryPrimitives.ReadUInt64LittleEndian(share[c..]) >= Prime) return false;
        return true;
    }

    private static void ValidateXs(ReadOnlySpan<int> xs)
    {
        var seen = new HashSet<int>();
        foreach (var x in xs)
        {
            if (x <= 0) throw new ArgumentException($"Share coordinate {x} must be positive.", nameof(xs));
            if (!seen.Add(x)) throw new ArgumentException($"Share coordinate {x} repeats.", nameof(xs));
        }
    }

    private static ulong RandomFieldElement()
    {
        Span<byte> buf = stackalloc byte[8];
        while (true)
        {
            RandomNumberGenerator.Fill(buf);
            var v = BinaryPrimitives.ReadUInt64LittleEndian(buf) & Prime;
            if (v < Prime) return v;
        }
    }

    internal static ulong Add(ulong a, ulong b)
    {
        Debug.Assert(a < Prime && b < Prime);
        var s = a + b;
        return s >= Prime ? s - Prime : s;
    }

    internal static ulong Sub(ulong a, ulong b)
    {
        a %= Prime; b %= Prime;
        return a >= b ? a - b : a + Prime - b;
    }

    internal static ulong Mul(ulong a, ulong b)
    {
        Debug.Assert(a < Prime && b < Prime);
        var hi = Math.BigMul(a, b, out var lo);
        // a*b = hi*2^64 + lo; 2^61 == 1 (mod p), so fold the bits above 61.
        var folded = (lo & Prime) + ((lo >> 61) | (hi << 3));
        folded = (folded & Prime) + (folded >> 61);
        return folded >= Prime ? folded - Prime : folded;
    }

    internal static ulong Inverse(ulong a)
    {
        if (a == 0) throw new ArgumentException("Zero has no inverse.");
        // Fermat: a^(p-2).
        ulong result = 1, b = a, e = Prime - 2;
        while (e != 0)
        {
            if ((e & 1) != 0) result = Mul(result, b);
            b = Mul(b, b);
            e >>= 1;
        }
        return result;
    }
}
