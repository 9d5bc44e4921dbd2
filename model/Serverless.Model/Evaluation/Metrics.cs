namespace Serverless.Model.Evaluation;

/// <summary>
/// Classification quality. <see cref="ConfusionMatrix"/> is row-major [actual, predicted]. For more than
/// two classes AUROC and AUPRC are macro averages of one-vs-rest scores.
/// </summary>
public sealed record EvaluationReport(
    int Count,
    int Classes,
    double Accuracy,
    double Auroc,
    double Auprc,
    double LogLoss,
    double ExpectedCalibrationError,
    IReadOnlyList<int> ConfusionMatrix);

/// <summary>Metric functions on probabilities: binary P(class 1) [n] or multiclass [n, classes].</summary>
public static class Metrics
{
    private const double ProbabilityFloor = 1e-7;

    public static EvaluationReport Evaluate(CnnLstm model, ReadOnlySpan<float> parameters, SequenceDataset data)
    {
        ArgumentNullException.ThrowIfNull(model);
        var probabilities = model.Predict(parameters, data);
        return FromProbabilities(probabilities, data.Labels, data.Classes);
    }

    public static EvaluationReport FromProbabilities(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes)
    {
        Check(probabilities, labels, classes);
        double auroc, auprc;
        if (classes == 2 && probabilities.Length == labels.Length)
        {
            auroc = Auroc(probabilities, labels);
            auprc = Auprc(probabilities, labels);
        }
        else
        {
            var n = labels.Length;
            var scores = new float[n];
            var binary = new int[n];
            double sumRoc = 0, sumPr = 0;
            var used = 0;
            for (var k = 0; k < classes; k++)
            {
                var positives = 0;
                for (var i = 0; i < n; i++)
                {
                    scores[i] = probabilities[i * classes + k];
                    binary[i] = labels[i] == k ? 1 : 0;
                    positives += binary[i];
                }
                if (positives == 0 || positives == n) continue;
                sumRoc += Auroc(scores, binary);
                sumPr += Auprc(scores, binary);
                used++;
            }
            auroc = used == 0 ? double.NaN : sumRoc / used;
            auprc = used == 0 ? double.NaN : sumPr / used;
        }
        var confusion = ConfusionMatrix(probabilities, labels, classes);
        var correct = 0;
        for (var k = 0; k < classes; k++) correct += confusion[k * classes + k];
        return new EvaluationReport(
            labels.Length, classes,
            labels.Length == 0 ? double.NaN : (double)correct / labels.Length,
            auroc, auprc,
            LogLoss(probabilities, labels, classes),
            ExpectedCalibrationError(probabilities, labels, classes),
            confusion);
    }

    /// <summary>Area under the ROC curve = P(score of a random positive > a random negative), ties count half (Mann-Whitney U with mid-ranks). NaN if a class is absent.</summary>
    public static double Auroc(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels)
    {
        if (scores.Length != labels.Length) throw new ArgumentException("scores and labels differ in length");
        var n = scores.Length;
        var order = SortedIndices(scores);
        double rankSumPositives = 0;
        long positives = 0;
        var i = 0;
        while (i < n)
        {
            var j = i;
            while (j + 1 < n && scores[order[j + 1]] == scores[order[i]]) j++;
            var midRank = (i + j) / 2.0 + 1; // 1-based average rank of the tie group
            for (var k = i; k <= j; k++)
                if (labels[order[k]] == 1) { rankSumPositives += midRank; positives++; }
            i = j + 1;
        }
        var negatives = n - positives;
        if (positives == 0 || negatives == 0) return double.NaN;
        return (rankSumPositives - positives * (positives + 1) / 2.0) / ((double)positives * negatives);
    }

    /// <summary>Area under the precision-recall curve as average precision: sum over thresholds of (ΔRecall · precision), tied scores grouped.</summary>
    public static double Auprc(ReadOnlySpan<float> scores, ReadOnlySpan<int> labels)
    {
        if (scores.Length != labels.Length) throw new ArgumentException("scores and labels differ in length");
        var n = scores.Length;
        long totalPositives = 0;
        foreach (var l in labels) if (l == 1) totalPositives++;
        if (totalPositives == 0) return double.NaN;
        var order = SortedIndices(scores);
        double ap = 0;
        long tp = 0, fp = 0;
        var i = n - 1; // descending scores
        while (i >= 0)
        {
            var j = i;
            while (j - 1 >= 0 && scores[order[j - 1]] == scores[order[i]]) j--;
            long groupTp = 0;
            for (var k = j; k <= i; k++) if (labels[order[k]] == 1) groupTp++;
            tp += groupTp;
            fp += i - j + 1 - groupTp;
            if (groupTp > 0) ap += (double)groupTp / totalPositives * ((double)tp / (tp + fp));
            i = j - 1;
        }
        return ap;
    }

    /// <summary>Mean negative log-likelihood, probabilities clamped to [1e-7, 1 - 1e-7].</summary>
    public static double LogLoss(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes)
    {
        Check(probabilities, labels, classes);
        if (labels.Length == 0) return double.NaN;
        double total = 0;
        for (var i = 0; i < labels.Length; i++)
            total -= Math.Log(Math.Clamp(ProbabilityOf(probabilities, labels.Length, classes, i, labels[i]), ProbabilityFloor, 1 - ProbabilityFloor));
        return total / labels.Length;
    }

    /// <summary>Expected calibration error of the top-label confidence over equal-width bins (Guo et al. 2017).</summary>
    public static double ExpectedCalibrationError(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes, int bins = 10)
    {
        Check(probabilities, labels, classes);
        ArgumentOutOfRangeException.ThrowIfLessThan(bins, 1);
        if (labels.Length == 0) return double.NaN;
        var count = new int[bins];
        var confidence = new double[bins];
        var correct = new double[bins];
        for (var i = 0; i < labels.Length; i++)
        {
            var predicted = Predicted(probabilities, labels.Length, classes, i);
            var p = ProbabilityOf(probabilities, labels.Length, classes, i, predicted);
            var bin = Math.Min(bins - 1, (int)(p * bins));
            count[bin]++;
            confidence[bin] += p;
            if (predicted == labels[i]) correct[bin] += 1;
        }
        double ece = 0;
        for (var b = 0; b < bins; b++)
            if (count[b] > 0) ece += Math.Abs(correct[b] - confidence[b]) / labels.Length;
        return ece;
    }

    /// <summary>Row-major [actual, predicted] counts; prediction is the arg-max (threshold 0.5 for binary).</summary>
    public static int[] ConfusionMatrix(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes)
    {
        Check(probabilities, labels, classes);
        var m = new int[classes * classes];
        for (var i = 0; i < labels.Length; i++) m[labels[i] * classes + Predicted(probabilities, labels.Length, classes, i)]++;
        return m;
    }

    public static double Accuracy(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes)
    {
        var m = ConfusionMatrix(probabilities, labels, classes);
        var correct = 0;
        for (var k = 0; k < classes; k++) correct += m[k * classes + k];
        return labels.Length == 0 ? double.NaN : (double)correct / labels.Length;
    }

    private static bool IsBinaryLayout(int probabilities, int n, int classes) => classes == 2 && probabilities == n;

    private static double ProbabilityOf(ReadOnlySpan<float> p, int n, int classes, int i, int k) =>
        IsBinaryLayout(p.Length, n, classes) ? (k == 1 ? p[i] : 1.0 - p[i]) : p[i * classes + k];

    private static int Predicted(ReadOnlySpan<float> p, int n, int classes, int i)
    {
        if (IsBinaryLayout(p.Length, n, classes)) return p[i] >= 0.5f ? 1 : 0;
        var best = 0;
        for (var k = 1; k < classes; k++) if (p[i * classes + k] > p[i * classes + best]) best = k;
        return best;
    }

    private static void Check(ReadOnlySpan<float> probabilities, ReadOnlySpan<int> labels, int classes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 2);
        var n = labels.Length;
        if (probabilities.Length != n * classes && !(classes == 2 && probabilities.Length == n))
            throw new ArgumentException($"{probabilities.Length} probabilities for {n} labels and {classes} classes");
        foreach (var l in labels) if ((uint)l >= (uint)classes) throw new ArgumentException($"label {l} outside 0..{classes - 1}");
        foreach (var p in probabilities) if (!(p >= 0 && p <= 1)) throw new ArgumentException($"probability {p} outside [0, 1]");
    }

    private static int[] SortedIndices(ReadOnlySpan<float> scores)
    {
        var keys = scores.ToArray();
        var order = new int[keys.Length];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(keys, order); // ascending; ties handled as groups by the callers, so order within a tie is irrelevant
        return order;
    }
}
