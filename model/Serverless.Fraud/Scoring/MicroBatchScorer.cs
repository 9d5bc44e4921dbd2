using Serverless.Fraud.Data;
using Serverless.Fraud.Features;
using Serverless.Fraud.Tokenization;
using Serverless.Fraud.Training;
using Serverless.Model.Data;
using Serverless.Model.Nn;

namespace Serverless.Fraud.Scoring;

/// <summary>What the scorer serves: the champion, an optional challenger on a share of the cards, and the alert threshold.</summary>
public sealed record ScorerOptions
{
    public required FraudModel Champion { get; init; }

    /// <summary>Scored on every event (shadow) and served to <see cref="ChallengerFraction"/> of the cards.</summary>
    public FraudModel? Challenger { get; init; }

    public double ChallengerFraction { get; init; } = 0.1;

    /// <summary>Names the canary experiment; another name routes a different set of cards.</summary>
    public string Experiment { get; init; } = "canary";

    /// <summary>An event whose served score is at or above this raises an alert.</summary>
    public double Threshold { get; init; } = 0.5;

    /// <summary>ONNX Runtime over the exported file (default), or the C# forward pass.</summary>
    public ScoringRuntime Runtime { get; init; } = ScoringRuntime.OnnxRuntime;

    /// <summary>Largest forward pass; bigger batches are scored in chunks of this size.</summary>
    public int MaxBatch { get; init; } = 1024;

    public ScorerOptions Validated()
    {
        ArgumentNullException.ThrowIfNull(Champion);
        Check(Champion, nameof(Champion));
        if (Challenger is not null)
        {
            Check(Challenger, nameof(Challenger));
            if (Challenger.Steps != Champion.Steps) throw new ArgumentException("champion and challenger must read the same window length (one history store)");
            if (Challenger.Version == Champion.Version) throw new ArgumentException("champion and challenger need different versions");
        }
        if (!(ChallengerFraction >= 0 && ChallengerFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(ChallengerFraction), ChallengerFraction, "[0, 1]");
        if (!(Threshold > 0 && Threshold <= 1)) throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "(0, 1]");
        if (MaxBatch is < 1 or > 65_536) throw new ArgumentOutOfRangeException(nameof(MaxBatch), MaxBatch, "1..65536");
        return this;
    }

    private static void Check(FraudModel m, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(m.Version, name);
        if (m.Config.Features != EventFeatures.Count) throw new ArgumentException($"{name} reads {m.Config.Features} features, the encoder writes {EventFeatures.Count}");
        if (m.Config.Task != TaskKind.Binary) throw new ArgumentException($"{name} must be a binary model");
        if (m.Parameters.Length != new CnnLstm(m.Config).ParameterCount) throw new ArgumentException($"{name} has the wrong number of parameters");
    }
}

/// <summary>Every scored event, with both versions' scores when a challenger runs.</summary>
public sealed record ScoreRecord(
    CardToken Card,
    long TimestampMs,
    string ServedVersion,
    float ServedScore,
    string ChampionVersion,
    float ChampionScore,
    string? ChallengerVersion,
    float? ChallengerScore,
    bool Alerted);

/// <summary>
/// An alert for the bank: the card token (never the number), the event, the served model's version and
/// score, the other version's score, and the explanation on the served model.
/// </summary>
public sealed record FraudAlert(
    CardToken Card,
    long TimestampMs,
    double Amount,
    float Score,
    double Threshold,
    string ModelVersion,
    string? OtherVersion,
    float? OtherScore,
    Explanation Explanation);

/// <summary>A transaction the scorer refused: its position in the batch and why (the reason never quotes the card number).</summary>
public sealed record RejectedTransaction(int Index, string Reason);

public sealed record BatchResult(IReadOnlyList<ScoreRecord> Scores, IReadOnlyList<FraudAlert> Alerts, IReadOnlyList<RejectedTransaction> Rejected);

/// <summary>
/// Scores micro-batches: tokenizes each card number (nothing downstream sees it), appends the event to
/// the card's history, builds the window, runs the champion (and the challenger) over the whole batch in
/// one forward pass each, routes each card to one version by <see cref="CanaryRouter"/>, raises alerts
/// with occlusion explanations, and feeds the drift monitor. Events of one card in one batch are applied
/// in order. Not thread-safe (the model and its buffers are reused): one scorer per partition.
/// </summary>
public sealed class MicroBatchScorer : IDisposable
{
    private const int Granularity = 32;
    private readonly ScorerOptions _o;
    private readonly CardTokenizer _tokenizer;
    private readonly ICardHistoryStore _store;
    private readonly PsiMonitor? _drift;
    private readonly CanaryRouter _router;
    private readonly IModelRunner _champion;
    private readonly IModelRunner? _challenger;
    private readonly OcclusionExplainer _championExplainer;
    private readonly OcclusionExplainer? _challengerExplainer;
    private readonly int _k;
    private readonly float[] _scratch;
    private readonly float[] _championScores, _challengerScores;
    private readonly Dictionary<int, SequenceDataset> _batches = [];
    private readonly int[] _rowOf;
    private readonly CardToken[] _tokens;

    public MicroBatchScorer(ScorerOptions options, CardTokenizer tokenizer, ICardHistoryStore store, PsiMonitor? drift = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(store);
        _o = options.Validated();
        if (store.Capacity != _o.Champion.Steps) throw new ArgumentException($"history store keeps {store.Capacity} events, the model reads {_o.Champion.Steps}", nameof(store));
        _tokenizer = tokenizer;
        _store = store;
        _drift = drift;
        _router = new CanaryRouter(_o.Challenger is null ? 0 : _o.ChallengerFraction, _o.Experiment);
        _k = _o.Champion.Steps;
        _champion = ModelRunners.Create(_o.Champion, _o.Runtime);
        _championExplainer = new OcclusionExplainer(_champion);
        if (_o.Challenger is { } c)
        {
            _challenger = ModelRunners.Create(c, _o.Runtime);
            _challengerExplainer = new OcclusionExplainer(_challenger);
        }
        _scratch = new float[WindowBuilder.ScratchLength(_k)];
        var capacity = RoundUp(_o.MaxBatch);
        _championScores = new float[capacity];
        _challengerScores = new float[capacity];
        _rowOf = new int[_o.MaxBatch];
        _tokens = new CardToken[_o.MaxBatch];
    }

    public ScorerOptions Options => _o;
    public CanaryRouter Router => _router;

    public BatchResult Score(IReadOnlyList<Transaction> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var scores = new List<ScoreRecord>(batch.Count);
        var alerts = new List<FraudAlert>();
        var rejected = new List<RejectedTransaction>();
        for (var start = 0; start < batch.Count; start += _o.MaxBatch)
            ScoreChunk(batch, start, Math.Min(_o.MaxBatch, batch.Count - start), scores, alerts, rejected);
        return new BatchResult(scores, alerts, rejected);
    }

    private void ScoreChunk(IReadOnlyList<Transaction> batch, int start, int count, List<ScoreRecord> scores, List<FraudAlert> alerts, List<RejectedTransaction> rejected)
    {
        const int f = EventFeatures.Count;
        var stride = _k * f;
        // First pass: validate, tokenize and append in order; count the rows to score.
        var rows = 0;
        var data = Dataset(count);
        for (var i = 0; i < count; i++)
        {
            var t = batch[start + i];
            if (t is null) { rejected.Add(new RejectedTransaction(start + i, "transaction is null")); _rowOf[i] = -1; continue; }
            var reason = Validate(t);
            if (reason is null && !_tokenizer.TryTokenize(t.CardNumber, out _tokens[i], out reason)) { }
            if (reason is not null) { rejected.Add(new RejectedTransaction(start + i, reason)); _rowOf[i] = -1; continue; }
            WindowBuilder.Append(_store, _tokens[i], t, data.Values.AsSpan(rows * stride, stride), data.Mask.AsSpan(rows * _k, _k), _scratch);
            _rowOf[i] = rows++;
        }
        if (rows == 0) return;
        // Rows past the batch keep their previous contents (valid windows), and their outputs are ignored.
        _champion.Predict(data, _championScores);
        _challenger?.Predict(data, _challengerScores);

        // Second pass: route, record both scores, feed the drift monitor, collect the alerts per served version.
        var pending = new List<(int Index, int Row, bool ToChallenger)>();
        for (var i = 0; i < count; i++)
        {
            var row = _rowOf[i];
            if (row < 0) continue;
            var t = batch[start + i];
            var card = _tokens[i];
            var champion = _championScores[row];
            float? challenger = _challenger is null ? null : _challengerScores[row];
            var toChallenger = _challenger is not null && _router.ToChallenger(card);
            var served = toChallenger ? challenger!.Value : champion;
            var servedVersion = toChallenger ? _o.Challenger!.Version : _o.Champion.Version;
            var alert = served >= _o.Threshold;
            scores.Add(new ScoreRecord(card, t.TimestampMs, servedVersion, served, _o.Champion.Version, champion, _o.Challenger?.Version, challenger, alert));
            if (_drift is not null)
            {
                var mask = data.Mask.AsSpan(row * _k, _k);
                var last = 0;
                while (last + 1 < _k && mask[last + 1] != 0) last++;
                _drift.Observe(data.Values.AsSpan(row * stride + last * f, f));
            }
            if (alert) pending.Add((i, row, toChallenger));
        }
        if (pending.Count == 0) return;

        // Explanations: one batched occlusion pass per served version, then the alerts in event order.
        var explanations = new Explanation[pending.Count];
        foreach (var version in new[] { false, true })
        {
            var picked = new List<int>();
            for (var a = 0; a < pending.Count; a++) if (pending[a].ToChallenger == version) picked.Add(a);
            if (picked.Count == 0) continue;
            var windows = new float[picked.Count * stride];
            var masks = new float[picked.Count * _k];
            for (var j = 0; j < picked.Count; j++)
            {
                var row = pending[picked[j]].Row;
                data.Values.AsSpan(row * stride, stride).CopyTo(windows.AsSpan(j * stride));
                data.Mask.AsSpan(row * _k, _k).CopyTo(masks.AsSpan(j * _k));
            }
            var explained = (version ? _challengerExplainer! : _championExplainer).Explain(windows, masks, picked.Count);
            for (var j = 0; j < picked.Count; j++) explanations[picked[j]] = explained[j];
        }
        for (var a = 0; a < pending.Count; a++)
        {
            var (i, row, toChallenger) = pending[a];
            var t = batch[start + i];
            var champion = _championScores[row];
            var challenger = _challengerScores[row];
            alerts.Add(new FraudAlert(_tokens[i], t.TimestampMs, t.Amount,
                toChallenger ? challenger : champion, _o.Threshold,
                toChallenger ? _o.Challenger!.Version : _o.Champion.Version,
                _challenger is null ? null : toChallenger ? _o.Champion.Version : _o.Challenger!.Version,
                _challenger is null ? null : toChallenger ? champion : challenger,
                explanations[a]));
        }
    }

    /// <summary>Field checks before anything is stored; the reason names the field, never its value.</summary>
    internal static string? Validate(Transaction t)
    {
        if (string.IsNullOrEmpty(t.CardNumber)) return "card number is missing";
        if (!double.IsFinite(t.Amount) || t.Amount <= 0 || t.Amount > 1e9) return "amount must be a positive finite number below 1e9";
        if (t.TimestampMs <= 0) return "timestamp must be positive (ms since the Unix epoch)";
        if (!float.IsFinite(t.LocationX) || !float.IsFinite(t.LocationY) || Math.Abs(t.LocationX) > 1 || Math.Abs(t.LocationY) > 1) return "location must be finite and within [-1, 1]";
        if (!Enum.IsDefined(t.Category)) return "unknown merchant category";
        if (!Enum.IsDefined(t.Kind)) return "unknown transaction kind";
        if (t.Direction is < -1 or > 1 || (t.Kind == TransactionKind.Transfer) != (t.Direction != 0)) return "direction must be +1 or -1 for a transfer and 0 for a purchase";
        if (t.UtcOffsetHours is < -14 or > 14) return "UTC offset must be within -14..14 hours";
        if (!float.IsFinite(t.CardAgeDays) || t.CardAgeDays < 0) return "card age must be a non-negative number of days";
        return null;
    }

    /// <summary>A reused dataset of at least <paramref name="count"/> rows (multiples of 32, so few sizes exist).</summary>
    private SequenceDataset Dataset(int count)
    {
        var size = RoundUp(count);
        if (_batches.TryGetValue(size, out var d)) return d;
        var mask = new float[size * _k];
        for (var r = 0; r < size; r++) mask[r * _k] = 1; // a valid (one-step, all-zero) window until overwritten
        d = new SequenceDataset(size, _k, EventFeatures.Count, 2, new float[size * _k * EventFeatures.Count], mask, new int[size]);
        _batches[size] = d;
        return d;
    }

    public void Dispose()
    {
        _champion.Dispose();
        _challenger?.Dispose();
    }

    private static int RoundUp(int n) => (n + Granularity - 1) / Granularity * Granularity;
}
