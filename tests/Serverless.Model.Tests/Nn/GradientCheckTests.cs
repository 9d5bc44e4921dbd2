using Serverless.Model.Nn;

namespace Serverless.Model.Tests.Nn;

/// <summary>
/// Analytic gradients (backpropagation through time) against central finite differences, in double
/// precision, for every parameter tensor (layer) of every architecture, activation family and task.
/// </summary>
public sealed class GradientCheckTests
{
    public static TheoryData<ArchitectureKind, string, TaskKind, int> Cases()
    {
        var data = new TheoryData<ArchitectureKind, string, TaskKind, int>();
        foreach (var arch in Enum.GetValues<ArchitectureKind>())
        foreach (var acts in new[] { "smooth", "relu", "poly" })
        foreach (var task in Enum.GetValues<TaskKind>())
        foreach (var hidden in new[] { 0, 5 })
        {
            if (arch == ArchitectureKind.LastVisitLogistic && acts != "smooth") continue;
            data.Add(arch, acts, task, hidden);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Analytic_gradient_matches_finite_differences_for_every_tensor(ArchitectureKind arch, string acts, TaskKind task, int headHidden)
    {
        var config = new ModelConfig
        {
            Features = 4, Steps = 5, Architecture = arch, ConvChannels = 3, KernelSize = 3, LstmHidden = 4,
            HeadHidden = headHidden, Task = task, Classes = task == TaskKind.Binary ? 2 : 3,
            ConvActivation = acts switch { "relu" => ActivationKind.Relu, "poly" => ActivationKind.Square, _ => ActivationKind.Tanh },
            GateActivation = acts == "poly" ? ActivationKind.PolySigmoid3 : ActivationKind.Sigmoid,
            CellActivation = acts == "poly" ? ActivationKind.PolyTanh3 : ActivationKind.Tanh,
            HeadActivation = acts switch { "relu" => ActivationKind.Relu, "poly" => ActivationKind.PolyRelu2, _ => ActivationKind.Sigmoid },
        };
        var net = new Network<double>(config);
        var rng = new Random(11);
        const int batch = 4;
        var p = new double[net.Layout.TotalLength];
        for (var i = 0; i < p.Length; i++) p[i] = (rng.NextDouble() * 2 - 1) * 0.6;
        var x = new double[batch * config.Steps * config.Features];
        for (var i = 0; i < x.Length; i++) x[i] = rng.NextDouble() * 2 - 1;
        // Different sequence lengths, including a full one and a one-visit one; padding is zero as the preprocessor makes it.
        int[] lengths = [5, 3, 1, 4];
        var mask = new double[batch * config.Steps];
        for (var b = 0; b < batch; b++)
        for (var t = 0; t < config.Steps; t++)
        {
            mask[b * config.Steps + t] = t < lengths[b] ? 1 : 0;
            if (t >= lengths[b]) x.AsSpan((b * config.Steps + t) * config.Features, config.Features).Clear();
        }
        var labels = new int[batch];
        for (var b = 0; b < batch; b++) labels[b] = b % config.Classes;

        var ws = net.CreateWorkspace(batch);
        var grad = new double[p.Length];
        net.LossAndGradient(p, x, mask, labels, batch, ws, grad);

        const double h = 1e-6;
        foreach (var view in net.Layout.Views)
        {
            var worst = 0.0;
            for (var i = view.Offset; i < view.Offset + view.Length; i++)
            {
                var saved = p[i];
                p[i] = saved + h;
                net.Forward(p, x, mask, batch, ws);
                var plus = net.Loss(labels, batch, ws);
                p[i] = saved - h;
                net.Forward(p, x, mask, batch, ws);
                var minus = net.Loss(labels, batch, ws);
                p[i] = saved;
                var numeric = (plus - minus) / (2 * h);
                var error = Math.Abs(numeric - grad[i]) / Math.Max(1e-4, Math.Abs(numeric) + Math.Abs(grad[i]));
                worst = Math.Max(worst, error);
            }
            Assert.True(worst < 1e-5, $"{view.Name}: worst relative error {worst:E2}");
        }
        // The gradient is not trivially zero.
        Assert.Contains(grad, g => Math.Abs(g) > 1e-4);
    }

    [Theory]
    [InlineData(ActivationKind.Identity)]
    [InlineData(ActivationKind.Relu)]
    [InlineData(ActivationKind.Sigmoid)]
    [InlineData(ActivationKind.Tanh)]
    [InlineData(ActivationKind.Square)]
    [InlineData(ActivationKind.PolySigmoid3)]
    [InlineData(ActivationKind.PolyTanh3)]
    [InlineData(ActivationKind.PolyRelu2)]
    public void Activation_derivative_matches_finite_differences_and_span_form_matches_scalar(ActivationKind kind)
    {
        double[] xs = [-3.1, -1.2, -0.4, 0.3, 0.9, 2.5];
        var ys = new double[xs.Length];
        Activations<double>.Apply(kind, xs, ys);
        for (var i = 0; i < xs.Length; i++)
        {
            var x = xs[i];
            Assert.Equal(Activations<double>.Apply(kind, x), ys[i], 1e-12);
            var numeric = (Activations<double>.Apply(kind, x + 1e-6) - Activations<double>.Apply(kind, x - 1e-6)) / 2e-6;
            Assert.Equal(numeric, Activations<double>.Derivative(kind, x, ys[i]), 1e-6);
        }
    }

    [Fact]
    public void Polynomial_activations_approximate_sigmoid_and_tanh_on_their_fit_intervals()
    {
        for (var x = -5.0; x <= 5.0; x += 0.01)
            Assert.InRange(Activations<double>.Apply(ActivationKind.PolySigmoid3, x) - 1 / (1 + Math.Exp(-x)), -0.062, 0.062);
        for (var x = -2.5; x <= 2.5; x += 0.005)
        {
            Assert.InRange(Activations<double>.Apply(ActivationKind.PolyTanh3, x) - Math.Tanh(x), -0.122, 0.122);
            // Same identity as tanh(x) = 2 sigmoid(2x) - 1.
            Assert.Equal(2 * Activations<double>.Apply(ActivationKind.PolySigmoid3, 2 * x) - 1, Activations<double>.Apply(ActivationKind.PolyTanh3, x), 1e-6);
        }
    }
}
