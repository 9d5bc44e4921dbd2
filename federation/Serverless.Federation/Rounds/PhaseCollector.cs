namespace Serverless.Federation.Rounds;

/// <summary>
/// How a phase's deadline treats a host that was itself late. A durable timer fires at the deadline,
/// but the orchestration only observes it when the host gets round to it; a gap between the two means
/// the host (not the clients) was not running the round, and on a loaded host the HTTP endpoints were
/// slow for the same stretch. Such a gap is given back once it exceeds the tolerance, so a live client
/// is never counted as dropped for time the host lost.
/// </summary>
/// <param name="Tolerance">Lateness of the host that counts as normal (timer granularity, one episode).</param>
/// <param name="MaxExtensions">Times one phase may be extended (a host that stalls for ever still closes the phase).</param>
public sealed record PhaseDeadlinePolicy(TimeSpan Tolerance, int MaxExtensions)
{
    /// <summary>The product's policy: tolerate 2 s of host lateness, extend a phase up to 3 times.</summary>
    public static PhaseDeadlinePolicy Default { get; } = new(TimeSpan.FromSeconds(2), 3);

    /// <summary>The phase closes when its timer is observed, however late (the behaviour before this policy; tests compare with it).</summary>
    public static PhaseDeadlinePolicy Strict { get; } = new(TimeSpan.MaxValue, 0);

    /// <summary>The tolerance for a phase of <paramref name="length"/>: the policy's, or a tenth of the phase when that is longer.</summary>
    public TimeSpan ToleranceFor(TimeSpan length) => Tolerance == TimeSpan.MaxValue ? Tolerance : TimeSpan.FromTicks(Math.Max(Tolerance.Ticks, length.Ticks / 10));
}

/// <summary>
/// The orchestration's bookkeeping for one open phase, as a pure state machine so that the durable round
/// and the tests run the same decisions: which expected clients have been heard from, when the phase
/// closes, and whether an observed deadline closes it or is extended because the host was late
/// (<see cref="PhaseDeadlinePolicy"/>). It decides when to close, not who made it: the close counts every
/// message the server stored before it closed (<see cref="RoundCoordinator.ArrivalsAtClose"/>), so an
/// arrival the engine delivers after the deadline timer (same batch, queued later) is not lost.
/// </summary>
public sealed class PhaseCollector
{
    private readonly HashSet<int> _expected;
    private readonly SortedSet<int> _got = [];
    private readonly PhaseDeadlinePolicy _policy;
    private readonly TimeSpan _length;

    /// <param name="expected">Ids expected to answer.</param>
    /// <param name="opensAt">When the phase opened (orchestration time).</param>
    /// <param name="length">The phase's configured length.</param>
    /// <param name="policy">Deadline policy.</param>
    public PhaseCollector(IEnumerable<int> expected, DateTime opensAt, TimeSpan length, PhaseDeadlinePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(policy);
        if (length <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(length), length, "A phase must be open for a positive time.");
        _expected = [.. expected];
        _policy = policy;
        _length = length;
        Deadline = opensAt + length;
    }

    /// <summary>When the phase closes unless everyone answers first (moves when extended).</summary>
    public DateTime Deadline { get; private set; }

    /// <summary>Extensions granted so far.</summary>
    public int Extensions { get; private set; }

    /// <summary>Every expected client has been heard from.</summary>
    public bool Complete => _got.Count == _expected.Count;

    /// <summary>Expected ids heard from, ascending.</summary>
    public int[] Got => [.. _got];

    /// <summary>Records an arrival event (duplicates and strangers are ignored); true when it was new.</summary>
    public bool Arrived(int id) => _expected.Contains(id) && _got.Add(id);

    /// <summary>
    /// The deadline timer was observed at <paramref name="observedAt"/>. Returns true when the phase closes now; false when
    /// the host was later than the tolerance and the phase is extended by that lateness (at most one phase length,
    /// at most <see cref="PhaseDeadlinePolicy.MaxExtensions"/> times), with <see cref="Deadline"/> moved.
    /// </summary>
    public bool DeadlineObserved(DateTime observedAt)
    {
        if (observedAt < Deadline) return false;   // an early or stale timer: keep waiting until the deadline
        var lateness = observedAt - Deadline;
        if (Extensions >= _policy.MaxExtensions || lateness <= _policy.ToleranceFor(_length)) return true;
        Extensions++;
        Deadline = observedAt + (lateness < _length ? lateness : _length);
        return false;
    }
}
