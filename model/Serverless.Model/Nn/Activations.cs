using System.Numerics;
using System.Numerics.Tensors;

namespace Serverless.Model.Nn;

/// <summary>
/// Degree-3 least-squares fits (see <see cref="ActivationKind"/>): sigmoid on [-5, 5] and
/// tanh(x) = 2 sigmoid(2x) - 1 on [-2.5, 2.5]. Evaluated as c0 + x (c1 + (c3 x) x) in the runtime and in ONNX.
/// </summary>
internal static class PolyCoefficients
{
    public const double S0 = 0.5, S1 = 0.19832646, S3 = -0.0044731045;
    public const double H1 = 0.79330586, H3 = -0.071569672;
    public const double R0 = 0.375, R1 = 0.5, R2 = 0.1171875; // ReLU on [-4, 4]: 3/8 + x/2 + 15/128 x^2
}

/// <summary>Activation functions and their derivatives, element-wise on spans.</summary>
internal static class Activations<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private static readonly T S0 = T.CreateChecked(PolyCoefficients.S0), S1 = T.CreateChecked(PolyCoefficients.S1), S3 = T.CreateChecked(PolyCoefficients.S3);
    private static readonly T H1 = T.CreateChecked(PolyCoefficients.H1), H3 = T.CreateChecked(PolyCoefficients.H3);
    private static readonly T R0 = T.CreateChecked(PolyCoefficients.R0), R1 = T.CreateChecked(PolyCoefficients.R1), R2 = T.CreateChecked(PolyCoefficients.R2);
    private static readonly T Two = T.CreateChecked(2), Three = T.CreateChecked(3);

    public static void Apply(ActivationKind kind, ReadOnlySpan<T> x, Span<T> y)
    {
        switch (kind)
        {
            case ActivationKind.Identity: x.CopyTo(y); break;
            case ActivationKind.Relu: TensorPrimitives.Max(x, T.Zero, y); break;
            case ActivationKind.Sigmoid: TensorPrimitives.Sigmoid(x, y); break;
            case ActivationKind.Tanh: TensorPrimitives.Tanh(x, y); break;
            case ActivationKind.Square: TensorPrimitives.Multiply(x, x, y); break;
            case ActivationKind.PolySigmoid3:
                for (var i = 0; i < x.Length; i++) { var v = x[i]; y[i] = S0 + v * (S1 + S3 * v * v); }
                break;
            case ActivationKind.PolyTanh3:
                for (var i = 0; i < x.Length; i++) { var v = x[i]; y[i] = v * (H1 + H3 * v * v); }
                break;
            case ActivationKind.PolyRelu2:
                for (var i = 0; i < x.Length; i++) { var v = x[i]; y[i] = R0 + v * (R1 + R2 * v); }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    public static T Apply(ActivationKind kind, T x) => kind switch
    {
        ActivationKind.Identity => x,
        ActivationKind.Relu => x > T.Zero ? x : T.Zero,
        ActivationKind.Sigmoid => T.One / (T.One + T.Exp(-x)),
        ActivationKind.Tanh => T.Tanh(x),
        ActivationKind.Square => x * x,
        ActivationKind.PolySigmoid3 => S0 + x * (S1 + S3 * x * x),
        ActivationKind.PolyTanh3 => x * (H1 + H3 * x * x),
        ActivationKind.PolyRelu2 => R0 + x * (R1 + R2 * x),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>dx = dy · f'(x), given the pre-activation x and the output y = f(x).</summary>
    public static void Backward(ActivationKind kind, ReadOnlySpan<T> x, ReadOnlySpan<T> y, ReadOnlySpan<T> dy, Span<T> dx)
    {
        for (var i = 0; i < x.Length; i++) dx[i] = dy[i] * Derivative(kind, x[i], y[i]);
    }

    public static T Derivative(ActivationKind kind, T x, T y) => kind switch
    {
        ActivationKind.Identity => T.One,
        ActivationKind.Relu => x > T.Zero ? T.One : T.Zero,
        ActivationKind.Sigmoid => y * (T.One - y),
        ActivationKind.Tanh => T.One - y * y,
        ActivationKind.Square => Two * x,
        ActivationKind.PolySigmoid3 => S1 + Three * S3 * x * x,
        ActivationKind.PolyTanh3 => H1 + Three * H3 * x * x,
        ActivationKind.PolyRelu2 => R1 + Two * R2 * x,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };
}
