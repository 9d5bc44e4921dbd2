namespace Serverless.Privacy.DifferentialPrivacy;

/// <summary>log erfc(x) to near double precision for all real x, without underflow for large x.</summary>
internal static class SpecialFunctions
{
    private const double TwoOverSqrtPi = 1.1283791670955126;
    private static readonly double LogSqrtPi = 0.5 * Math.Log(Math.PI);

    /// <summary>log(1 + x), accurate for tiny x (Goldberg's correction: .NET's double.LogP1 is log(x + 1)).</summary>
    public static double Log1p(double x)
    {
        var u = 1 + x;
        return u == 1 ? x : Math.Log(u) * x / (u - 1);
    }

    /// <summary>exp(x) - 1, accurate for tiny x (Kahan's correction).</summary>
    public static double Expm1(double x)
    {
        if (Math.Abs(x) < 1e-5) return x + x * x / 2 + x * x * x / 6;
        var u = Math.Exp(x);
        if (u == 1) return x;
        var um1 = u - 1;
        return um1 == -1 ? -1 : um1 * x / Math.Log(u);
    }

    public static double LogErfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x < 0) return Math.Log(2 - Erfc(-x));
        if (x < 3) return Math.Log(Erfc(x));
        // erfc(x) = exp(-x^2)/sqrt(pi) * K(x), K(x) = 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated by modified Lentz.
        return -x * x - LogSqrtPi + Math.Log(ContinuedFraction(x));
    }

    /// <summary>erfc for x &gt;= 0.</summary>
    public static double Erfc(double x)
    {
        if (x < 0) return 2 - Erfc(-x);
        if (x < 3) return 1 - Erf(x);
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) * ContinuedFraction(x);
    }

    // erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)): every term positive, no cancellation.
    private static double Erf(double x)
    {
        double term = x, sum = x;
        for (var n = 1; n < 500; n++)
        {
            term *= 2 * x * x / (2 * n + 1);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x * x) * sum;
    }

    private static double ContinuedFraction(double x)
    {
        // K = 1 / (x + a1/(x + a2/(x + ...))) with a_n = n/2.
        const double Tiny = 1e-300;
        var f = x;
        var c = x;
        var d = 0.0;
        for (var n = 1; n < 5000; n++)
        {
            var a = n / 2.0;
            d = x + a * d;
            if (Math.Abs(d) < Tiny) d = Tiny;
            c = x + a / c;
            if (Math.Abs(c) < Tiny) c = Tiny;
            d = 1 / d;
            var delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return 1 / f;
    }
}
