using System.Diagnostics;
using Serverless.Fraud.Training;

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

/// <summary>Every scored event, with both versions' scores when a challenger runs (a struct: scoring a batch allocates nothing per event).</summary>
public readonly record struct ScoreRecord(
    string TransactionId,
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
/// An alert for the bank: the transaction id, the card token (never the number), the event, the served
/// model's version and score, the other version's score, and the explanation on the served model.
/// Delivery is at least once (a crash after the alert is sent and before the scorer commits replays the
/// batch), so a reader de-duplicates on <see cref="TransactionId"/>.
/// </summary>
public sealed record FraudAlert(
    string TransactionId,
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

/// <param name="Duplicates">Positions of events whose transaction id was already scored (skipped: neither scored nor appended to the history).</param>
public sealed record BatchResult(IReadOnlyList<ScoreRecord> Scores, IReadOnlyList<FraudAlert> Alerts, IReadOnlyList<RejectedTransaction> Rejected, IReadOnlyList<int> Duplicates);

/// <summary>
/// A batch's results in reused buffers, for a caller that scores batch after batch without allocating per
/// event: <see cref="MicroBatchScorer.Score(ReadOnlySpan{CardEvent}, BatchOutput)"/> clears and refills it.
/// </summary>
public sealed class BatchOutput
{
    private ScoreRecord[] _scores = new ScoreRecord[64];

    public int ScoreCount { get; private set; }
    public ReadOnlySpan<ScoreRecord> Scores => _scores.AsSpan(0, ScoreCount);
    public List<FraudAlert> Alerts { get; } = [];
    public List<RejectedTransaction> Rejected { get; } = [];
    public List<int> Duplicates { get; } = [];

    internal void Clear(int capacity)
    {
        if (_scores.Length < capacity) _scores = new ScoreRecord[Math.Max(capacity, _scores.Length * 2)];
        ScoreCount = 0;
        Alerts.Clear();
        Rejected.Clear();
        Duplicates.Clear();
    }

    internal void Add(in ScoreRecord r) => _scores[ScoreCount++] = r;

    public BatchResult ToResult() => new(Scores.ToArray(), [.. Alerts], [.. Rejected], [.. Duplicates]);
}

/// <summary>Where the scorer's time went since it was created (Stopwatch ticks, summed over batches).</summary>
public sealed record ScorerTimings(long IntakeTicks, long ForwardTicks, long RouteTicks, long ExplainTicks, long Events, long Explained)
{
    public static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    public override string ToString() =>
        $"intake (validate, de-duplicate, history, window) {Ms(IntakeTicks):F0} ms, forward {Ms(ForwardTicks):F0} ms, route/records/drift {Ms(RouteTicks):F0} ms, explanations {Ms(ExplainTicks):F0} ms ({Explained} alerts) over {Events} events";
}

/// <summary>
/// Scores micro-batches of tokenized events (<see cref="CardEvent"/>; a <see cref="Transaction"/> overload
/// tokenizes first): skips a transaction id already scored, appends the event to the card's history,
/// builds the window, runs the champion (and the challenger) over the whole batch in one forward pass each,
/// routes each card to one version by <see cref="CanaryRouter"/>, raises alerts with occlusion
/// explanations, and feeds the drift monitor. Events of one card in one batch are applied in order. After
/// the caller has delivered the alerts it calls <see cref="Commit"/>, which makes the history and the
/// claimed ids durable (with a durable store). Not thread-safe (the model and its buffers are reused): one
/// scorer per partition.
/// </summary>
public sealed class MicroBatchScorer : IDisposable
{
    private const int Granularity = 32;
    private readonly ScorerOptions _o;
    private readonly CardTokenizer? _tokenizer;
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
    private readonly bool[] _toChallenger;
    private readonly List<int> _pending = [];
    private readonly List<int> _picked = [];
    private float[] _windows = [], _masks = [];
    private long _intake, _forward, _route, _explain, _events, _explained;

    /// <summary>A scorer of tokenized events only (<see cref="Score(IReadOnlyList{Transaction})"/> then throws).</summary>
    public MicroBatchScorer(ScorerOptions options, ICardHistoryStore store, PsiMonitor? drift = null)
        : this(options, null, store, drift)
    {
    }

    /// <param name="tokenizer">Tokenizes raw transactions given to <see cref="Score(IReadOnlyList{Transaction})"/>; null if only tokenized events arrive.</param>
    public MicroBatchScorer(ScorerOptions options, CardTokenizer? tokenizer, ICardHistoryStore store, PsiMonitor? drift = null)
    {
        ArgumentNullException.ThrowIfNull(options);
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
        _toChallenger = new bool[_o.MaxBatch];
    }

    public ScorerOptions Options => _o;
    public CanaryRouter Router => _router;
    public ScorerTimings Timings => new(_intake, _forward, _route, _explain, _events, _explained);

    /// <summary>Tokenizes raw transactions (a refused card number is a rejection at its index), then scores them.</summary>
    public BatchResult Score(IReadOnlyList<Transaction> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (_tokenizer is null) throw new InvalidOperationException("this scorer takes tokenized events only (no tokenizer)");
        var events = new List<CardEvent>(batch.Count);
        var positions = new List<int>(batch.Count);
        var refused = new List<RejectedTransaction>();
        for (var i = 0; i < batch.Count; i++)
        {
            var t = batch[i];
            if (t is null) { refused.Add(new RejectedTransaction(i, "transaction is null")); continue; }
            if (!_tokenizer.TryTokenize(t.CardNumber ?? "", out var token, out var reason))
            {
                refused.Add(new RejectedTransaction(i, string.IsNullOrEmpty(t.CardNumber) ? "card number is missing" : reason!));
                continue;
            }
            events.Add(CardEvent.From(t, token));
            positions.Add(i);
        }
        var r = Score(events);
        // Back to the caller's positions, refusals in index order.
        var rejected = refused.Concat(r.Rejected.Select(x => x with { Index = positions[x.Index] })).OrderBy(x => x.Index).ToList();
        return new BatchResult(r.Scores, r.Alerts, rejected, r.Duplicates.Select(d => positions[d]).ToList());
    }

    /// <summary>Scores tokenized events; allocates the result (use the <see cref="BatchOutput"/> overload to reuse buffers).</summary>
    public BatchResult Score(IReadOnlyList<CardEvent> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var output = new BatchOutput();
        Score(batch is CardEvent[] a ? a : batch.ToArray(), output);
        return output.ToResult();
    }

    /// <summary>Scores tokenized events into <paramref name="output"/> (cleared first); allocates only for alerts and refusals.</summary>
    public void Score(ReadOnlySpan<CardEvent> batch, BatchOutput output)
    {
        ArgumentNullException.ThrowIfNull(output);
        output.Clear(batch.Length);
        for (var start = 0; start < batch.Length; start += _o.MaxBatch)
            ScoreChunk(batch.Slice(start, Math.Min(_o.MaxBatch, batch.Length - start)), start, output);
    }

    /// <summary>
    /// Runs every input shape the scorer will use once (each padded batch size, each explanation chunk) on
    /// placeholder windows, without touching the history: ONNX Runtime plans memory on a shape's first run,
    /// which otherwise lands on the first real batches of that size as a latency spike.
    /// </summary>
    public void WarmUp()
    {
        for (var size = Granularity; size <= RoundUp(_o.MaxBatch); size += Granularity)
        {
            var d = Dataset(size);
            _champion.Predict(d, _championScores);
            _challenger?.Predict(d, _challengerScores);
        }
        var stride = _k * EventFeatures.Count;
        var windows = new float[16 * stride];
        var masks = new float[16 * _k];
        for (var w = 0; w < 16; w++) masks[w * _k] = 1;
        for (var n = 1; n <= 16; n *= 2)
        {
            _championExplainer.Explain(windows.AsSpan(0, n * stride), masks.AsSpan(0, n * _k), n);
            _challengerExplainer?.Explain(windows.AsSpan(0, n * stride), masks.AsSpan(0, n * _k), n);
        }
    }

    /// <summary>Makes the history and the claimed transaction ids durable; call once the batch's alerts are delivered, before acknowledging its messages.</summary>
    public void Commit() => _store.Commit();

    private void ScoreChunk(ReadOnlySpan<CardEvent> batch, int start, BatchOutput output)
    {
        const int f = EventFeatures.Count;
        var stride = _k * f;
        var t0 = Stopwatch.GetTimestamp();
        // First pass: validate, claim the id, append in order; count the rows to score.
        var rows = 0;
        var count = batch.Length;
        var data = Dataset(count);
        for (var i = 0; i < count; i++)
        {
            _rowOf[i] = -1;
            var t = batch[i];
            var reason = t is null ? "transaction is null" : Validate(t);
            if (reason is not null) { output.Rejected.Add(new RejectedTransaction(start + i, reason)); continue; }
            if (!_store.TryClaim(t!.TransactionId)) { output.Duplicates.Add(start + i); continue; }
            WindowBuilder.Append(_store, t, data.Values.AsSpan(rows * stride, stride), data.Mask.AsSpan(rows * _k, _k), _scratch);
            _rowOf[i] = rows++;
        }
        _events += rows;
        var t1 = Stopwatch.GetTimestamp();
        _intake += t1 - t0;
        if (rows == 0) return;
        // Rows past the batch keep their previous contents (valid windows), and their outputs are ignored.
        _champion.Predict(data, _championScores);
        _challenger?.Predict(data, _challengerScores);
        var t2 = Stopwatch.GetTimestamp();
        _forward += t2 - t1;

        // Second pass: route, record both scores, feed the drift monitor, collect the alerts.
        _pending.Clear();
        var championVersion = _o.Champion.Version;
        var challengerVersion = _o.Challenger?.Version;
        for (var i = 0; i < count; i++)
        {
            var row = _rowOf[i];
            if (row < 0) continue;
            var t = batch[i];
            var champion = _championScores[row];
            float? challenger = _challenger is null ? null : _challengerScores[row];
            var toChallenger = _challenger is not null && _router.ToChallenger(t.Card);
            _toChallenger[i] = toChallenger;
            var served = toChallenger ? _challengerScores[row] : champion;
            var alert = served >= _o.Threshold;
            output.Add(new ScoreRecord(t.TransactionId, t.Card, t.TimestampMs, toChallenger ? challengerVersion! : championVersion, served,
                championVersion, champion, challengerVersion, challenger, alert));
            if (_drift is not null)
            {
                var mask = data.Mask.AsSpan(row * _k, _k);
                var last = 0;
                while (last + 1 < _k && mask[last + 1] != 0) last++;
                _drift.Observe(data.Values.AsSpan(row * stride + last * f, f));
            }
            if (alert) _pending.Add(i);
        }
        var t3 = Stopwatch.GetTimestamp();
        _route += t3 - t2;
        if (_pending.Count == 0) return;

        // Explanations: one batched occlusion pass per served version, then the alerts in event order.
        var explanations = new Explanation[_pending.Count];
        foreach (var version in (ReadOnlySpan<bool>)[false, true])
        {
            _picked.Clear();
            for (var a = 0; a < _pending.Count; a++) if (_toChallenger[_pending[a]] == version) _picked.Add(a);
            if (_picked.Count == 0) continue;
            if (_windows.Length < _picked.Count * stride) { _windows = new float[_pending.Count * stride]; _masks = new float[_pending.Count * _k]; }
            for (var j = 0; j < _picked.Count; j++)
            {
                var row = _rowOf[_pending[_picked[j]]];
                data.Values.AsSpan(row * stride, stride).CopyTo(_windows.AsSpan(j * stride));
                data.Mask.AsSpan(row * _k, _k).CopyTo(_masks.AsSpan(j * _k));
            }
            var explained = (version ? _challengerExplainer! : _championExplainer).Explain(_windows.AsSpan(0, _picked.Count * stride), _masks.AsSpan(0, _picked.Count * _k), _picked.Count);
            for (var j = 0; j < _picked.Count; j++) explanations[_picked[j]] = explained[j];
        }
        for (var a = 0; a < _pending.Count; a++)
        {
            var i = _pending[a];
            var row = _rowOf[i];
            var t = batch[i];
            var toChallenger = _toChallenger[i];
            var champion = _championScores[row];
            var challenger = _challengerScores[row];
            output.Alerts.Add(new FraudAlert(t.TransactionId, t.Card, t.TimestampMs, t.Amount,
                toChallenger ? challenger : champion, _o.Threshold,
                toChallenger ? challengerVersion! : championVersion,
                _challenger is null ? null : toChallenger ? championVersion : challengerVersion,
                _challenger is null ? null : toChallenger ? champion : challenger,
                explanations[a]));
        }
        _explained += _pending.Count;
        _explain += Stopwatch.GetTimestamp() - t3;
    }

    /// <summary>Field checks before anything is stored; the reason names the field, never its value (null when the event is well formed).</summary>
    public static string? Validate(CardEvent t)
    {
        if (!ValidId(t.TransactionId)) return "transaction id must be 1-64 printable ASCII characters without a run of 12 or more digits";
        if (t.Card == default) return "card token is missing";
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

    // The id is stored (de-duplication) and travels with alerts: printable ASCII, bounded, and no digit run
    // long enough to be a card number (ISO/IEC 7812-1: 12 or more), so a PAN misused as an id is refused.
    private static bool ValidId(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 64) return false;
        var run = 0;
        foreach (var c in id)
        {
            if (c is < '!' or > '~') return false;
            run = char.IsAsciiDigit(c) ? run + 1 : 0;
            if (run >= 12) return false;
        }
        return true;
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
