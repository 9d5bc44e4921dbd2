namespace Serverless.Model.Nn;

/// <summary>Names and shapes of each architecture's weight tensors (ONNX layouts, so export copies them as they are).</summary>
internal static class ModelLayout
{
    public const string ConvWeight = "conv.weight";   // [C, F, K]
    public const string ConvBias = "conv.bias";       // [C]
    public const string LstmW = "lstm.W";             // [4H, C], gates i, o, f, c
    public const string LstmR = "lstm.R";             // [4H, H]
    public const string LstmB = "lstm.b";             // [4H]
    public const string HiddenWeight = "head.hidden.weight"; // [Hh, D]
    public const string HiddenBias = "head.hidden.bias";     // [Hh]
    public const string OutputWeight = "head.output.weight"; // [O, D or Hh]
    public const string OutputBias = "head.output.bias";     // [O]

    public static int HeadInputWidth(ModelConfig c) => c.Architecture switch
    {
        ArchitectureKind.CnnLstm => c.LstmHidden,
        ArchitectureKind.CnnOnly => c.ConvChannels,
        _ => c.Features,
    };

    public static ParameterLayout Build(ModelConfig c)
    {
        var tensors = new List<(string, int[])>();
        if (c.Architecture != ArchitectureKind.LastVisitLogistic)
        {
            tensors.Add((ConvWeight, [c.ConvChannels, c.Features, c.KernelSize]));
            tensors.Add((ConvBias, [c.ConvChannels]));
        }
        if (c.Architecture == ArchitectureKind.CnnLstm)
        {
            tensors.Add((LstmW, [4 * c.LstmHidden, c.ConvChannels]));
            tensors.Add((LstmR, [4 * c.LstmHidden, c.LstmHidden]));
            tensors.Add((LstmB, [4 * c.LstmHidden]));
        }
        var d = HeadInputWidth(c);
        if (c.HeadHidden > 0)
        {
            tensors.Add((HiddenWeight, [c.HeadHidden, d]));
            tensors.Add((HiddenBias, [c.HeadHidden]));
            d = c.HeadHidden;
        }
        tensors.Add((OutputWeight, [c.Outputs, d]));
        tensors.Add((OutputBias, [c.Outputs]));
        return new ParameterLayout(tensors);
    }
}
