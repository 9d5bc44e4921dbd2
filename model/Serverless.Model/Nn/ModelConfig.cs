namespace Serverless.Model.Nn;

/// <summary>Binary outcome (one sigmoid output) or multiclass (softmax over <see cref="ModelConfig.Classes"/>).</summary>
public enum TaskKind
{
    Binary,
    Multiclass,
}

/// <summary>
/// Element-wise activations. The polynomial ones are for the homomorphic-inference variant (CKKS evaluates
/// only additions and multiplications): <see cref="Square"/> is x^2 (as in CryptoNets); <see cref="PolySigmoid3"/>
/// is the degree-3 least-squares fit of the logistic function on [-5, 5] (max error 0.061),
/// 0.5 + 0.19832646 x - 0.0044731045 x^3 (the same fit on [-8, 8] gives Kim et al. 2018's 0.15012 x -
/// 0.0015930 x^3, which is too flat for standardized inputs); <see cref="PolyTanh3"/> follows from
/// tanh(x) = 2 sigmoid(2x) - 1: 0.79330586 x - 0.071569672 x^3 (max error 0.12 on [-2.5, 2.5]);
/// <see cref="PolyRelu2"/> is the degree-2 fit of ReLU on [-4, 4]. Polynomials leave their fit interval
/// fast, so the HE variant wants small weights (train it with gradient clipping and a small learning rate).
/// </summary>
public enum ActivationKind
{
    Identity,
    Relu,
    Sigmoid,
    Tanh,
    Square,
    PolySigmoid3,
    PolyTanh3,

    /// <summary>Degree-2 least-squares fit of ReLU on [-4, 4]: 3/8 + x/2 + (15/128) x^2 (bounded growth, unlike x^2 alone).</summary>
    PolyRelu2,
}

/// <summary>Which network: the CNN-LSTM, or one of the two baselines trained by the same code.</summary>
public enum ArchitectureKind
{
    /// <summary>Causal Conv1D over visits, activation, LSTM over visits (last real visit's state), dense head.</summary>
    CnnLstm,

    /// <summary>Baseline: causal Conv1D, activation, masked global average pooling, dense head.</summary>
    CnnOnly,

    /// <summary>Baseline: logistic (softmax) regression on the last real visit's features.</summary>
    LastVisitLogistic,
}

/// <summary>Shape and activations of a model. <see cref="Features"/> and <see cref="Steps"/> fix the input [batch, Steps, Features].</summary>
public sealed record ModelConfig
{
    public required int Features { get; init; }
    public required int Steps { get; init; }
    public ArchitectureKind Architecture { get; init; } = ArchitectureKind.CnnLstm;
    public int ConvChannels { get; init; } = 16;

    /// <summary>Causal kernel over visits: output at visit t sees visits t-K+1..t (zeros before the first).</summary>
    public int KernelSize { get; init; } = 3;

    public ActivationKind ConvActivation { get; init; } = ActivationKind.Relu;
    public int LstmHidden { get; init; } = 16;

    /// <summary>Activation of the input, forget and output gates (sigmoid, or its polynomial).</summary>
    public ActivationKind GateActivation { get; init; } = ActivationKind.Sigmoid;

    /// <summary>Activation of the cell candidate and the cell output (tanh, or its polynomial).</summary>
    public ActivationKind CellActivation { get; init; } = ActivationKind.Tanh;

    /// <summary>Width of an optional hidden dense layer in the head; 0 for none.</summary>
    public int HeadHidden { get; init; }

    public ActivationKind HeadActivation { get; init; } = ActivationKind.Relu;
    public TaskKind Task { get; init; } = TaskKind.Binary;

    /// <summary>Number of classes (2 for binary).</summary>
    public int Classes { get; init; } = 2;

    /// <summary>Width of the output: 1 probability for binary, <see cref="Classes"/> probabilities for multiclass.</summary>
    public int Outputs => Task == TaskKind.Binary ? 1 : Classes;

    public ModelConfig Validated()
    {
        static void Range(int value, int min, int max, string name)
        {
            if (value < min || value > max) throw new ArgumentOutOfRangeException(name, value, $"model config: {name} must be in {min}..{max}");
        }
        Range(Features, 1, 4096, nameof(Features));
        Range(Steps, 1, 1024, nameof(Steps));
        Range(ConvChannels, 1, 4096, nameof(ConvChannels));
        Range(KernelSize, 1, 64, nameof(KernelSize));
        Range(LstmHidden, 1, 4096, nameof(LstmHidden));
        Range(HeadHidden, 0, 4096, nameof(HeadHidden));
        Range(Classes, 2, 1024, nameof(Classes));
        if (Task == TaskKind.Binary && Classes != 2) throw new ArgumentException("model config: a binary task has 2 classes");
        foreach (var a in new[] { ConvActivation, GateActivation, CellActivation, HeadActivation })
            if (!Enum.IsDefined(a)) throw new ArgumentException($"model config: unknown activation {a}");
        if (!Enum.IsDefined(Architecture)) throw new ArgumentException($"model config: unknown architecture {Architecture}");
        if (!Enum.IsDefined(Task)) throw new ArgumentException($"model config: unknown task {Task}");
        return this;
    }

    /// <summary>The HE-friendly variant of this config: polynomial activations everywhere.</summary>
    public ModelConfig WithPolynomialActivations() => this with
    {
        ConvActivation = ActivationKind.PolyRelu2,
        GateActivation = ActivationKind.PolySigmoid3,
        CellActivation = ActivationKind.PolyTanh3,
        HeadActivation = ActivationKind.PolyRelu2,
    };
}
