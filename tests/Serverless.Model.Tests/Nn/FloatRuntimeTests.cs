using Serverless.Model.Nn;

namespace Serverless.Model.Tests.Nn;

/// <summary>The float network used for training is the same computation as the double one the gradient checks verify.</summary>
public sealed class FloatRuntimeTests
{
    [Theory]
    [InlineData(ArchitectureKind.CnnLstm, TaskKind.Binary)]
    [InlineData(ArchitectureKind.CnnLstm, TaskKind.Multiclass)]
    [InlineData(ArchitectureKind.CnnOnly, TaskKind.Binary)]
    [InlineData(ArchitectureKind.LastVisitLogistic, TaskKind.Multiclass)]
    public void Float_forward_and_gradient_agree_with_double(ArchitectureKind arch, TaskKind task)
    {
        var config = new ModelConfig { Features = 6, Steps = 7, Architecture = arch, Task = task, Classes = task == TaskKind.Binary ? 2 : 4, HeadHidden = 5 };
        var f = new Network<float>(config);
        var d = new Network<double>(config);
        var rng = new Random(3);
        const int batch = 9;
        var p = new CnnLstm(config).InitializeParameters(2);
        var x = new float[batch * 7 * 6];
        var mask = new float[batch * 7];
        var labels = new int[batch];
        for (var b = 0; b < batch; b++)
        {
            var len = 1 + b % 7;
            for (var t = 0; t < len; t++)
            {
                mask[b * 7 + t] = 1;
                for (var i = 0; i < 6; i++) x[(b * 7 + t) * 6 + i] = (float)(rng.NextDouble() * 4 - 2);
            }
            labels[b] = b % config.Classes;
        }
        var gf = new float[p.Length];
        var gd = new double[p.Length];
        var wf = f.CreateWorkspace(batch);
        var wd = d.CreateWorkspace(batch);
        var lf = f.LossAndGradient(p, x, mask, labels, batch, wf, gf);
        var ld = d.LossAndGradient(p.Select(v => (double)v).ToArray(), x.Select(v => (double)v).ToArray(), mask.Select(v => (double)v).ToArray(), labels, batch, wd, gd);
        Assert.Equal(ld, lf, 1e-5);
        for (var i = 0; i < batch * config.Outputs; i++) Assert.Equal(wd.Probabilities[i], wf.Probabilities[i], 1e-5);
        var scale = gd.Max(Math.Abs);
        for (var i = 0; i < p.Length; i++) Assert.Equal(gd[i], gf[i], 1e-4 * scale + 1e-6);
    }

    [Fact]
    public void Padding_does_not_change_a_sequence_prediction()
    {
        // The same visits padded to a longer window give the same output (state carried through padding).
        var short_ = new ModelConfig { Features = 3, Steps = 4 };
        var p = new CnnLstm(short_).InitializeParameters(8);
        var net4 = new Network<float>(short_);
        var net6 = new Network<float>(short_ with { Steps = 6 });
        float[] x4 = [0.5f, -1, 2, 0.1f, 0.3f, -0.7f, 1, 1, 1, 0, 0, 0];
        float[] m4 = [1, 1, 1, 0];
        var x6 = x4.Concat(new float[6]).ToArray();
        float[] m6 = [1, 1, 1, 0, 0, 0];
        var w4 = net4.CreateWorkspace(1);
        var w6 = net6.CreateWorkspace(1);
        net4.Forward(p, x4, m4, 1, w4);
        net6.Forward(p, x6, m6, 1, w6);
        Assert.Equal(w4.Probabilities[0], w6.Probabilities[0]);
    }
}
