using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Inference;

/// <summary>
/// The HE-friendly checkpoint's weights in double, by layer, and its activations as polynomial
/// coefficients. The coefficients are those of docs/model.md ("Activations"): ReLU ≈ 3/8 + x/2 +
/// 15/128·x² (least squares on [−4, 4]), sigmoid ≈ 0.5 + 0.19832646x − 0.0044731045x³ (on [−5, 5]),
/// tanh ≈ 0.79330586x − 0.071569672x³; a test checks the encrypted circuit against the plaintext
/// model, so a drift between the two copies fails there.
/// </summary>
internal sealed class HeWeights
{
    public const double S0 = 0.5, S1 = 0.19832646, S3 = -0.0044731045;
    public const double H1 = 0.79330586, H3 = -0.071569672;

    public required int Features { get; init; }
    public required int Steps { get; init; }
    public required int Channels { get; init; }
    public required int Kernel { get; init; }
    public required int Hidden { get; init; }

    /// <summary>True for the PolyTanh3 cell activation, false for Identity.</summary>
    public required bool CellTanh { get; init; }

    /// <summary>Convolution activation c0 + c1·z + c2·z².</summary>
    public required double[] ConvPoly { get; init; }

    /// <summary>[C, F, K] row-major (the ONNX Conv layout): output at visit t sees visits t−K+1..t.</summary>
    public required double[] ConvWeight { get; init; }

    public required double[] ConvBias { get; init; }

    /// <summary>[4H, C], gates in ONNX order i, o, f, c.</summary>
    public required double[] LstmW { get; init; }

    public required double[] LstmB { get; init; }

    /// <summary>[H]: the single output logit's weights.</summary>
    public required double[] OutW { get; init; }

    public required double OutB { get; init; }

    /// <summary>
    /// [H]: i(κ_i)·g(κ_g), the input term at a padded step, where the whole convolution window is zero
    /// padding and the gate pre-activations are the constants κ = W·act(conv bias) + b.
    /// </summary>
    public required double[] PaddingInputTerm { get; init; }

    public static void CheckFriendly(ModelCheckpoint checkpoint)
    {
        var c = checkpoint.Config;
        void Fail(string why) => throw new ArgumentException($"not an HE-friendly checkpoint: {why}", nameof(checkpoint));
        if (c.Architecture != ArchitectureKind.CnnLstm) Fail($"architecture {c.Architecture}, expected CnnLstm");
        if (c.Task != TaskKind.Binary) Fail("only binary tasks (one logit) are supported");
        if (c.HeadHidden != 0) Fail("the head must have no hidden layer");
        if (c.ConvActivation is not (ActivationKind.PolyRelu2 or ActivationKind.Square or ActivationKind.Identity))
            Fail($"convolution activation {c.ConvActivation} is not a polynomial of degree ≤ 2");
        if (c.GateActivation != ActivationKind.PolySigmoid3) Fail($"gate activation {c.GateActivation}, expected PolySigmoid3");
        if (c.CellActivation is not (ActivationKind.PolyTanh3 or ActivationKind.Identity)) Fail($"cell activation {c.CellActivation}, expected PolyTanh3 or Identity");
        if (c.Steps > 64) Fail($"{c.Steps} steps is far beyond any modulus chain");
        var layout = new CnnLstm(c).Layout;
        foreach (var r in layout.Slice(checkpoint.Parameters.AsSpan(), "lstm.R"))
            if (r != 0f) Fail("lstm.R must be all zeros (train with HeModel.Train, which freezes it)");
    }

    public static HeWeights From(ModelCheckpoint checkpoint)
    {
        var c = checkpoint.Config;
        var layout = new CnnLstm(c).Layout;
        var p = checkpoint.Parameters;
        double[] Get(string name)
        {
            var s = layout.Slice(p.AsSpan(), name);
            var d = new double[s.Length];
            for (var i = 0; i < s.Length; i++) d[i] = s[i];
            return d;
        }
        var convPoly = c.ConvActivation switch
        {
            ActivationKind.PolyRelu2 => new[] { 0.375, 0.5, 0.1171875 },
            ActivationKind.Square => new[] { 0.0, 0.0, 1.0 },
            _ => new[] { 0.0, 1.0, 0.0 },
        };
        var lstmW = Get("lstm.W");
        var lstmB = Get("lstm.b");
        var convBias = Get("conv.bias");
        var (c0, c1, c2) = (convPoly[0], convPoly[1], convPoly[2]);
        var hidden = c.LstmHidden;
        var cellTanh = c.CellActivation == ActivationKind.PolyTanh3;
        var padding = new double[hidden];
        double Pre(int row)
        {
            var v = lstmB[row];
            for (var ch = 0; ch < c.ConvChannels; ch++)
            {
                var z = convBias[ch];
                v += lstmW[row * c.ConvChannels + ch] * (c0 + c1 * z + c2 * z * z);
            }
            return v;
        }
        for (var j = 0; j < hidden; j++)
        {
            var pi = Pre(j);
            var pg = Pre(3 * hidden + j);
            var i = S0 + S1 * pi + S3 * pi * pi * pi;
            var g = cellTanh ? H1 * pg + H3 * pg * pg * pg : pg;
            padding[j] = i * g;
        }
        return new HeWeights
        {
            PaddingInputTerm = padding,
            Features = c.Features,
            Steps = c.Steps,
            Channels = c.ConvChannels,
            Kernel = c.KernelSize,
            Hidden = c.LstmHidden,
            CellTanh = cellTanh,
            ConvPoly = convPoly,
            ConvWeight = Get("conv.weight"),
            ConvBias = convBias,
            LstmW = lstmW,
            LstmB = lstmB,
            OutW = Get("head.output.weight"),
            OutB = Get("head.output.bias")[0],
        };
    }
}
