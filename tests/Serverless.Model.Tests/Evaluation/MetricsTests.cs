using Serverless.Model.Evaluation;

namespace Serverless.Model.Tests.Evaluation;

public sealed class MetricsTests
{
    [Fact]
    public void Auroc_known_answers()
    {
        Assert.Equal(1.0, Metrics.Auroc([0.1f, 0.2f, 0.8f, 0.9f], [0, 0, 1, 1]));
        Assert.Equal(0.0, Metrics.Auroc([0.9f, 0.8f, 0.2f, 0.1f], [0, 0, 1, 1]));
        Assert.Equal(0.5, Metrics.Auroc([0.5f, 0.5f, 0.5f, 0.5f], [0, 1, 0, 1]));
        // Positives 0.8, 0.4; negatives 0.6, 0.2: pairs won 3 of 4.
        Assert.Equal(0.75, Metrics.Auroc([0.8f, 0.6f, 0.4f, 0.2f], [1, 0, 1, 0]));
        Assert.True(double.IsNaN(Metrics.Auroc([0.1f, 0.2f], [1, 1])));
    }

    [Fact]
    public void Auprc_is_average_precision()
    {
        // Ranked: 1 (P=1), 0, 1 (P=2/3), 0: AP = 0.5*1 + 0.5*2/3.
        Assert.Equal(0.5 + 1.0 / 3, Metrics.Auprc([0.8f, 0.6f, 0.4f, 0.2f], [1, 0, 1, 0]), 12);
        Assert.Equal(1.0, Metrics.Auprc([0.9f, 0.1f], [1, 0]));
    }

    [Fact]
    public void Log_loss_ece_accuracy_and_confusion_matrix_known_answers()
    {
        float[] p = [0.9f, 0.2f, 0.7f, 0.4f];
        int[] y = [1, 0, 0, 1];
        var expected = -(Math.Log(0.9f) + Math.Log(1 - 0.2f) + Math.Log(1 - 0.7f) + Math.Log(0.4f)) / 4;
        Assert.Equal(expected, Metrics.LogLoss(p, y, 2), 6);
        Assert.Equal(new[] { 1, 1, 1, 1 }, Metrics.ConfusionMatrix(p, y, 2)); // [TN FP; FN TP]
        Assert.Equal(0.5, Metrics.Accuracy(p, y, 2));
        // Top-label confidences 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (wrong), each in its own bin.
        Assert.Equal((0.1 + 0.2 + 0.7 + 0.6) / 4, Metrics.ExpectedCalibrationError(p, y, 2), 6);
    }

    [Fact]
    public void Multiclass_metrics_use_the_softmax_rows_and_macro_averages()
    {
        float[] p = [0.7f, 0.2f, 0.1f, 0.1f, 0.8f, 0.1f, 0.2f, 0.2f, 0.6f];
        int[] y = [0, 1, 2];
        var r = Metrics.FromProbabilities(p, y, 3);
        Assert.Equal(1.0, r.Accuracy);
        Assert.Equal(1.0, r.Auroc);
        Assert.Equal(new[] { 1, 0, 0, 0, 1, 0, 0, 0, 1 }, r.ConfusionMatrix);
        Assert.Throws<ArgumentException>(() => Metrics.FromProbabilities(p, [0, 1], 3));
        Assert.Throws<ArgumentException>(() => Metrics.FromProbabilities([1.5f, 0f], [0, 1], 2));
    }
}
