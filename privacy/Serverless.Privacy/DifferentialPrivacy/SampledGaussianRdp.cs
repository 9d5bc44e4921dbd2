namespace Serverless.Privacy.DifferentialPrivacy;

/// <summary>
/// Rényi differential privacy of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar and
/// Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", 2019): for sampling rate q
/// and noise multiplier z (noise std / L2 sensitivity), the RDP of order alpha is log(A_alpha)/(alpha-1),
/// where A_alpha has a finite binomial sum for integer alpha (Section 3.3) and two convergent series
/// with erfc terms for fractional alpha (Section 3.4). Everything is summed in log space so that
/// large orders and tiny q neither overflow nor underflow. Conversion to (epsilon, delta) uses the
/// improved bound of Balle et al. 2020 / Canonne, Kamath and Steinke 2020 (Prop. 12):
/// epsilon = rdp + log1p(-1/alpha) - (log delta + log alpha)/(alpha - 1).
/// </summary>
public static class SampledGaussianRdp
{
    /// <summary>Orders tried by default: 1.05..11 in steps of 0.05, every integer 12..64, then 128, 256, 512, 1024.</summary>
    public static IReadOnlyList<double> DefaultOrders { get; } =
        [.. Enumerable.Range(1, 200).Select(x => 1 + x / 20.0), .. Enumerable.Range(12, 53).Select(x => (double)x), 128, 256, 512, 1024];

    /// <summary>RDP of one step at <paramref name="order"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">q outside [0, 1], a negative noise multiplier, or order &lt;= 1.</exception>
    public static double RdpPerStep(double q, double noiseMultiplier, double order)
    {
        if (!(q >= 0 && q <= 1)) throw new ArgumentOutOfRangeException(nameof(q), "Sampling rate must be in [0, 1].");
        if (!(noiseMultiplier >= 0)) throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), "Noise multiplier must be non-negative.");
        if (!(order > 1)) throw new ArgumentOutOfRangeException(nameof(order), "RDP orders must exceed 1.");
        if (q == 0) return 0;
        if (noiseMultiplier == 0) return double.PositiveInfinity;
        if (double.IsPositiveInfinity(order)) return double.PositiveInfinity;
        if (q == 1) return order / (2 * noiseMultiplier * noiseMultiplier);
        var logA = order == Math.Floor(order) && order <= int.MaxValue
            ? LogAIntegerOrder(q, noiseMultiplier, (int)order)
            : LogAFractionalOrder(q, noiseMultiplier, order);
        return logA / (order - 1);
    }

    /// <summary>RDP after <paramref name="steps"/> compositions, one value per order.</summary>
    public static double[] Rdp(double q, double noiseMultiplier, long steps, IReadOnlyList<double> orders)
    {
        if (steps < 0) throw new ArgumentOutOfRangeException(nameof(steps));
        var result = new double[orders.Count];
        for (var i = 0; i < result.Length; i++) result[i] = RdpPerStep(q, noiseMultiplier, orders[i]) * steps;
        return result;
    }

    /// <summary>The smallest epsilon over the orders for the given delta, and the order that gave it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">delta outside (0, 1), or a negative RDP value.</exception>
    public static (double Epsilon, double Order) Epsilon(IReadOnlyList<double> orders, IReadOnlyList<double> rdp, double delta)
    {
        if (!(delta > 0 && delta < 1)) throw new ArgumentOutOfRangeException(nameof(delta), "Delta must be in (0, 1).");
        if (orders.Count != rdp.Count || orders.Count == 0) throw new ArgumentException("One RDP value per order is required.");
        var best = double.PositiveInfinity;
        var bestOrder = double.NaN;
        for (var i = 0; i < orders.Count; i++)
        {
            var a = orders[i];
            var r = rdp[i];
            if (r < 0) throw new ArgumentOutOfRangeException(nameof(rdp), "RDP values must be non-negative.");
            double eps;
            if (delta * delta + Math.Exp(-r) - 1 >= 0 && !double.IsInfinity(r)) eps = 0;   // delta >= sqrt(1 - e^-r): trivially (0, delta)-DP
            else if (a > 1.01) eps = r + Math.Log(1 - 1 / a) - (Math.Log(delta) + Math.Log(a)) / (a - 1);
            else eps = double.PositiveInfinity;                                                  // the bound is useless this close to 1
            if (eps < best) { best = eps; bestOrder = a; }
        }
        return (Math.Max(0, best), bestOrder);
    }

    /// <summary>Convenience: epsilon of <paramref name="steps"/> steps of the sampled Gaussian at delta.</summary>
    public static double Epsilon(double q, double noiseMultiplier, long steps, double delta, IReadOnlyList<double>? orders = null)
    {
        orders ??= DefaultOrders;
        return Epsilon(orders, Rdp(q, noiseMultiplier, steps, orders), delta).Epsilon;
    }

    // A_alpha = sum_{k=0}^{alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)).
    private static double LogAIntegerOrder(double q, double sigma, int alpha)
    {
        var logA = double.NegativeInfinity;
        var logBinom = 0.0;
        var logQ = Math.Log(q);
        var log1mQ = SpecialFunctions.Log1p(-q);
        for (var k = 0; k <= alpha; k++)
        {
            if (k > 0) logBinom += Math.Log(alpha - k + 1) - Math.Log(k);
            var term = logBinom + k * logQ + (alpha - k) * log1mQ + (k * (double)k - k) / (2 * sigma * sigma);
            logA = LogAdd(logA, term);
        }
        return logA;
    }

    // Fractional alpha: A = A0 + A1 with
    //   A0 = sum_k C(alpha,k) q^k (1-q)^(alpha-k) exp((k^2-k)/(2s^2)) * erfc((k - z0)/(sqrt2 s)) / 2
    //   A1 = sum_k C(alpha,k) q^(alpha-k) (1-q)^k exp(((alpha-k)^2-(alpha-k))/(2s^2)) * erfc((z0 - (alpha-k))/(sqrt2 s)) / 2
    // with z0 = s^2 log(1/q - 1) + 1/2; generalised binomials change sign past k > alpha.
    private static double LogAFractionalOrder(double q, double sigma, double alpha)
    {
        double logA0 = double.NegativeInfinity, logA1 = double.NegativeInfinity;
        var z0 = sigma * sigma * Math.Log(1 / q - 1) + 0.5;
        var logQ = Math.Log(q);
        var log1mQ = SpecialFunctions.Log1p(-q);
        var logAbsBinom = 0.0;
        var sign = 1;
        var sqrt2Sigma = Math.Sqrt(2) * sigma;
        for (var i = 0; i < 100_000; i++)
        {
            if (i > 0)
            {
                var factor = alpha - i + 1;
                if (factor == 0) break;               // only for integer alpha, handled elsewhere
                if (factor < 0) sign = -sign;
                logAbsBinom += Math.Log(Math.Abs(factor)) - Math.Log(i);
            }
            var j = alpha - i;
            var logT0 = logAbsBinom + i * logQ + j * log1mQ;
            var logT1 = logAbsBinom + j * logQ + i * log1mQ;
            var logE0 = Math.Log(0.5) + SpecialFunctions.LogErfc((i - z0) / sqrt2Sigma);
            var logE1 = Math.Log(0.5) + SpecialFunctions.LogErfc((z0 - j) / sqrt2Sigma);
            var logS0 = logT0 + (i * (double)i - i) / (2 * sigma * sigma) + logE0;
            var logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
            if (sign > 0) { logA0 = LogAdd(logA0, logS0); logA1 = LogAdd(logA1, logS1); }
            else { logA0 = LogSub(logA0, logS0); logA1 = LogSub(logA1, logS1); }
            if (Math.Max(logS0, logS1) < -30 && i > alpha) break;
        }
        return LogAdd(logA0, logA1);
    }

    internal static double LogAdd(double a, double b)
    {
        if (double.IsNegativeInfinity(a)) return b;
        if (double.IsNegativeInfinity(b)) return a;
        var hi = Math.Max(a, b);
        return hi + SpecialFunctions.Log1p(Math.Exp(-Math.Abs(a - b)));
    }

    internal static double LogSub(double a, double b)
    {
        if (double.IsNegativeInfinity(b)) return a;
        if (b > a) throw new ArithmeticException("log-space subtraction went negative; the series did not converge.");
        if (a == b) return double.NegativeInfinity;
        return a + Math.Log(-SpecialFunctions.Expm1(b - a));
    }
}
