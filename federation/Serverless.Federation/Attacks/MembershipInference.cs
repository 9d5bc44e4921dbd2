namespace Serverless.Federation.Attacks;

/// <summary>How well an attack told members from non-members.</summary>
/// <param name="Auc">Area under the attack's ROC curve (0.5 = no better than chance).</param>
/// <param name="Advantage">TPR - FPR at the best threshold, the threshold chosen on data the evaluation does not see
/// (the other half of a two-fold split for the loss attack, the shadow models for the shadow attack): an unbiased estimate, 0 under no leakage.</param>
/// <param name="AdvantageInSample">TPR - FPR at the best threshold chosen on the evaluated records themselves: an upper
/// bound that is positive even without leakage (about 0.87 sqrt(2/n) for n records a side, the expected Kolmogorov-Smirnov distance).</param>
public sealed record AttackScore(double Auc, double Advantage, double AdvantageInSample);

/// <summary>
/// Membership inference against a trained model's outputs, for measuring what a released model leaks
/// about its training records: the loss-threshold attack (Yeom et al. 2018: members have lower loss)
/// and the shadow-model attack (Shokri et al. 2017: models trained like the target on disjoint data of
/// the same distribution teach an attack classifier what members' outputs look like). Scores are
/// "higher = more likely a member".
/// </summary>
public static class MembershipInference
{
    /// <summary>Per-record cross-entropy of <paramref name="parameters"/> on <paramref name="data"/>.</summary>
    public static double[] Losses(CnnLstm model, float[] parameters, SequenceDataset data)
    {
        var p = model.Predict(parameters, data);
        var losses = new double[data.Count];
        for (var i = 0; i < data.Count; i++) losses[i] = -Math.Log(Math.Max(1e-12, TrueClassProbability(p, model.Config.Outputs, data.Labels[i], i)));
        return losses;
    }

    /// <summary>
    /// Shadow-attack features of each record: the logit-scaled confidence in the true label,
    /// log p_y - log(1 - p_y) (Carlini et al. 2022: close to normal per record, unlike p itself), and the label.
    /// </summary>
    public static (double Confidence, int Label)[] Features(CnnLstm model, float[] parameters, SequenceDataset data)
    {
        var p = model.Predict(parameters, data);
        var f = new (double, int)[data.Count];
        for (var i = 0; i < data.Count; i++)
        {
            var py = Math.Clamp(TrueClassProbability(p, model.Config.Outputs, data.Labels[i], i), 1e-9, 1 - 1e-9);
            f[i] = (Math.Log(py) - Math.Log(1 - py), data.Labels[i]);
        }
        return f;
    }

    private static double TrueClassProbability(float[] p, int outputs, int label, int i) =>
        outputs == 1 ? (label == 1 ? p[i] : 1 - p[i]) : p[i * outputs + label];

    /// <summary>Loss-threshold attack, score = -loss; the advantage's threshold is fitted on one half and measured on the other (both ways, averaged).</summary>
    public static AttackScore LossThreshold(double[] memberLosses, double[] nonMemberLosses, int seed)
    {
        var m = memberLosses.Select(x => -x).ToArray();
        var n = nonMemberLosses.Select(x => -x).ToArray();
        var rng = new Random(seed);
        rng.Shuffle(m);
        rng.Shuffle(n);
        var (m1, m2) = (m[..(m.Length / 2)], m[(m.Length / 2)..]);
        var (n1, n2) = (n[..(n.Length / 2)], n[(n.Length / 2)..]);
        var held = 0.5 * (AdvantageAt(m2, n2, BestThreshold(m1, n1).Threshold) + AdvantageAt(m1, n1, BestThreshold(m2, n2).Threshold));
        return new AttackScore(Auc(m, n), held, BestThreshold(m, n).Advantage);
    }

    /// <summary>
    /// Shadow-model attack: a logistic attack classifier on (confidence, label, confidence x label) learned
    /// from the shadow models' members and non-members; its threshold is the best one on the shadow data.
    /// </summary>
    public static AttackScore Shadow(IReadOnlyList<(double Confidence, int Label)> shadowMembers, IReadOnlyList<(double Confidence, int Label)> shadowNonMembers,
        IReadOnlyList<(double Confidence, int Label)> targetMembers, IReadOnlyList<(double Confidence, int Label)> targetNonMembers)
    {
        var w = FitLogistic(shadowMembers, shadowNonMembers);
        double[] Score(IReadOnlyList<(double C, int Y)> xs) => xs.Select(x => Dot(w, x.C, x.Y)).ToArray();
        var threshold = BestThreshold(Score(shadowMembers), Score(shadowNonMembers)).Threshold;
        var m = Score(targetMembers);
        var n = Score(targetNonMembers);
        return new AttackScore(Auc(m, n), AdvantageAt(m, n, threshold), BestThreshold(m, n).Advantage);
    }

    private static double Dot(double[] w, double c, int y) => w[0] + w[1] * c + w[2] * y + w[3] * c * y;

    // Logistic regression by full-batch gradient descent on standardized confidence (small, convex, deterministic).
    private static double[] FitLogistic(IReadOnlyList<(double C, int Y)> members, IReadOnlyList<(double C, int Y)> nonMembers)
    {
        var all = members.Select(x => (x.C, x.Y, T: 1.0)).Concat(nonMembers.Select(x => (x.C, x.Y, T: 0.0))).ToArray();
        var mean = all.Average(x => x.C);
        var sd = Math.Sqrt(all.Average(x => (x.C - mean) * (x.C - mean))) + 1e-9;
        var v = new double[4];
        var g = new double[4];
        for (var it = 0; it < 500; it++)
        {
            Array.Clear(g);
            foreach (var (c0, y, t) in all)
            {
                var c = (c0 - mean) / sd;
                var z = v[0] + v[1] * c + v[2] * y + v[3] * c * y;
                var e = 1 / (1 + Math.Exp(-z)) - t;
                g[0] += e; g[1] += e * c; g[2] += e * y; g[3] += e * c * y;
            }
            for (var k = 0; k < 4; k++) v[k] -= 1.0 * g[k] / all.Length;
        }
        // Back to raw confidence: v1 (c - mean)/sd = (v1/sd) c - v1 mean/sd, likewise for the interaction.
        return [v[0] - v[1] * mean / sd, v[1] / sd, v[2] - v[3] * mean / sd, v[3] / sd];
    }

    /// <summary>P(score of a random member > score of a random non-member), ties counting half (Mann-Whitney).</summary>
    public static double Auc(ReadOnlySpan<double> members, ReadOnlySpan<double> nonMembers)
    {
        if (members.Length == 0 || nonMembers.Length == 0) return double.NaN;
        var all = new (double Score, bool Member)[members.Length + nonMembers.Length];
        for (var i = 0; i < members.Length; i++) all[i] = (members[i], true);
        for (var i = 0; i < nonMembers.Length; i++) all[members.Length + i] = (nonMembers[i], false);
        Array.Sort(all, (a, b) => a.Score.CompareTo(b.Score));
        double rankSum = 0;
        for (var i = 0; i < all.Length;)
        {
            var j = i;
            while (j < all.Length && all[j].Score == all[i].Score) j++;
            var rank = (i + j + 1) / 2.0; // mean 1-based rank of the tie group
            for (var k = i; k < j; k++) if (all[k].Member) rankSum += rank;
            i = j;
        }
        return (rankSum - members.Length * (members.Length + 1) / 2.0) / ((double)members.Length * nonMembers.Length);
    }

    /// <summary>The threshold t maximizing TPR - FPR of "score >= t means member", and that advantage.</summary>
    public static (double Advantage, double Threshold) BestThreshold(ReadOnlySpan<double> members, ReadOnlySpan<double> nonMembers)
    {
        var all = new (double Score, bool Member)[members.Length + nonMembers.Length];
        for (var i = 0; i < members.Length; i++) all[i] = (members[i], true);
        for (var i = 0; i < nonMembers.Length; i++) all[members.Length + i] = (nonMembers[i], false);
        Array.Sort(all, (a, b) => b.Score.CompareTo(a.Score));
        double best = 0, threshold = double.PositiveInfinity;
        int tp = 0, fp = 0;
        for (var i = 0; i < all.Length;)
        {
            var j = i;
            while (j < all.Length && all[j].Score == all[i].Score) { if (all[j].Member) tp++; else fp++; j++; }
            var adv = tp / (double)members.Length - fp / (double)nonMembers.Length;
            if (adv > best) { best = adv; threshold = all[i].Score; }
            i = j;
        }
        return (best, threshold);
    }

    /// <summary>TPR - FPR of "score >= threshold means member".</summary>
    public static double AdvantageAt(ReadOnlySpan<double> members, ReadOnlySpan<double> nonMembers, double threshold)
    {
        var tp = 0;
        foreach (var s in members) if (s >= threshold) tp++;
        var fp = 0;
        foreach (var s in nonMembers) if (s >= threshold) fp++;
        return tp / (double)members.Length - fp / (double)nonMembers.Length;
    }
}
