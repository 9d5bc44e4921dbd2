using System.Security.Cryptography;
using Serverless.Federation.Rounds;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Federation.Tests.Rounds;

/// <summary>What one client does wrong in a round (null: nothing).</summary>
/// <param name="Id">SecAgg id.</param>
/// <param name="DropAt">Phase at which it goes silent.</param>
/// <param name="DropAfterSending">Whether it still sends that phase's message before going silent.</param>
/// <param name="LateIn">Phase whose message it sends after the deadline (a genuinely late client).</param>
/// <param name="DuplicateIn">Phase whose message it sends twice.</param>
/// <param name="MalformedTo">It sends a corrupt share bundle to this client (0: none).</param>
/// <param name="ThinkMs">Per phase, how long after the phase opens it sends (a live client, well inside the deadline).</param>
internal sealed record ClientFaults(int Id, RoundPhase? DropAt, bool DropAfterSending, RoundPhase? LateIn, RoundPhase? DuplicateIn, int MalformedTo, int[] ThinkMs)
{
    /// <summary>
    /// Answers every phase on time. A client that sends one corrupt bundle counts too: the bundle does not open, so the
    /// complaint about it proves nothing and must not change the survivor set (its input is masked as any other).
    /// </summary>
    public bool Reliable => DropAt is null && LateIn is null;
}

/// <summary>The machine is slow during a phase: from <paramref name="StartMs"/> after it opens, for <paramref name="LengthMs"/>, the orchestration does not run (and, with <paramref name="HttpToo"/>, neither does the HTTP intake).</summary>
internal sealed record HostStall(int StartMs, int LengthMs, bool HttpToo);

/// <summary>A seeded fault schedule for one secure-aggregation stage.</summary>
internal sealed record FaultSchedule(int Seed, int Clients, int Threshold, ClientFaults[] Faults, HostStall?[] Stalls, uint[][] Inputs, int LateMs, bool Malicious = false)
{
    public const int PhaseMs = 10_000;
    public const int VectorLength = 8;
    public const int RingBits = 16;

    /// <summary>The schedule of <paramref name="seed"/>: n in 5..20, t in [2, n - 1], about a third of the clients misbehaving, a slow host in a quarter of the phases.</summary>
    /// <param name="seed">The schedule's seed.</param>
    /// <param name="malicious">The malicious-server variant: signed keys, the consistency check phase, t from the floor floor(2n/3) + 1 to n - 1.</param>
    public static FaultSchedule Generate(int seed, bool malicious = false)
    {
        var rng = new Random(seed);
        var n = rng.Next(5, 21);
        var t = malicious ? rng.Next(2 * n / 3 + 1, n) : rng.Next(2, Math.Max(3, (2 * n) / 3 + 1));
        var phases = malicious ? RoundCoordinator.MaliciousSecurePhases : RoundCoordinator.SecurePhases;
        var faults = new ClientFaults[n];
        var malformedUsed = false;
        for (var i = 0; i < n; i++)
        {
            var id = i + 1;
            RoundPhase? drop = rng.NextDouble() < 0.25 ? phases[rng.Next(phases.Count)] : null;
            var after = rng.Next(2) == 0;
            RoundPhase? late = rng.NextDouble() < 0.08 ? phases[rng.Next(phases.Count)] : null;
            RoundPhase? duplicate = rng.NextDouble() < 0.2 ? phases[rng.Next(phases.Count)] : null;
            var malformedTo = 0;
            if (!malformedUsed && rng.NextDouble() < 0.08)
            {
                malformedUsed = true;
                malformedTo = 1 + (i + 1 + rng.Next(n - 1)) % n;   // another client
            }
            var think = phases.Select(_ => rng.Next(20, PhaseMs * 7 / 10)).ToArray();
            faults[i] = new ClientFaults(id, drop, after, late, duplicate, malformedTo, think);
        }
        var stalls = phases.Select(_ => rng.NextDouble() < 0.25 ? new HostStall(rng.Next(0, PhaseMs), rng.Next(PhaseMs / 2, PhaseMs * 5 / 2), rng.Next(2) == 0) : null).ToArray();
        var inputs = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, VectorLength).Select(_ => (uint)rng.Next(0, 1 << RingBits)).ToArray()).ToArray();
        return new FaultSchedule(seed, n, t, faults, stalls, inputs, rng.Next(PhaseMs / 10, PhaseMs / 2), malicious);
    }

    /// <summary>Clients that answer every phase on time with well-formed messages.</summary>
    public int[] Reliable => Faults.Where(f => f.Reliable).Select(f => f.Id).ToArray();

    /// <summary>
    /// Whether the round must complete: every secret the server needs has t holders that answer Unmasking. Reliable
    /// clients always answer; a client given a corrupt bundle cannot reveal that sender's key, so one holder fewer.
    /// </summary>
    public bool MustComplete
    {
        get
        {
            var reliable = Reliable.ToHashSet();
            var corrupted = Faults.Any(f => f.MalformedTo != 0 && reliable.Contains(f.MalformedTo)) ? 1 : 0;
            return reliable.Count - corrupted >= Threshold;
        }
    }

    public override string ToString() =>
        $"n={Clients} t={Threshold} reliable={Reliable.Length} faults=[{string.Join("; ", Faults.Where(f => !f.Reliable || f.DuplicateIn is not null || f.MalformedTo != 0).Select(f => $"{f.Id}:{(f.DropAt is { } d ? $"drop@{d}{(f.DropAfterSending ? "+sent" : "")}" : "")}{(f.LateIn is { } l ? $" late@{l}" : "")}{(f.DuplicateIn is { } u ? $" dup@{u}" : "")}{(f.MalformedTo != 0 ? $" badshare->{f.MalformedTo}" : "")}"))}] " +
        $"stalls=[{string.Join(", ", Stalls.Select((s, i) => s is null ? null : $"{(Malicious ? RoundCoordinator.MaliciousSecurePhases : RoundCoordinator.SecurePhases)[i]}@{s.StartMs}+{s.LengthMs}{(s.HttpToo ? " http" : "")}").Where(x => x is not null))}]";
}

/// <summary>The decision rules a model run uses: today's product, or the rules before the fix (for the regression seed).</summary>
/// <param name="Policy">How an observed deadline closes the phase.</param>
/// <param name="CountStoredAtClose">Whether a close counts every message stored before it (else only the arrival events it processed).</param>
internal sealed record RoundRules(PhaseDeadlinePolicy Policy, bool CountStoredAtClose)
{
    public static RoundRules Product { get; } = new(PhaseDeadlinePolicy.Default, CountStoredAtClose: true);

    /// <summary>The orchestration before the fix: the first deadline timer it processes closes the phase with the events processed so far.</summary>
    public static RoundRules BeforeFix { get; } = new(PhaseDeadlinePolicy.Strict, CountStoredAtClose: false);
}

/// <summary>How a model run ended.</summary>
internal sealed record ModelOutcome(bool Completed, string? Reason, int[] Included, uint[]? Sum, string? Problem)
{
    public string Summary => Completed ? $"completed [{string.Join(",", Included)}]" : $"failed: {Reason}";
}

/// <summary>
/// A deterministic discrete-event model of one secure stage of the durable round: real <see cref="SecAggClient"/>s,
/// the product's <see cref="PhaseCollector"/> and <see cref="RoundCoordinator.ClosePhase"/>, and a model of the engine
/// and the host: phase messages stored by the HTTP intake and raised as arrival events; the orchestration processing
/// its queue in batches in message order (the deadline timer, queued when the phase opened, sorts before every event
/// raised after it, as in the SQLite and PostgreSQL backends); a slow host that stops the orchestration (and maybe the
/// intake) for a while; a phase POST refused once the phase has closed.
/// </summary>
internal static class FaultScheduleModel
{
    private static readonly DateTime Origin = new(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);

    public static ModelOutcome Run(FaultSchedule schedule, RoundRules rules)
    {
        var ids = Enumerable.Range(1, schedule.Clients).ToArray();
        var roundId = new byte[32];
        new Random(schedule.Seed).NextBytes(roundId);
        var parameters = new SecAggRoundParameters(roundId, ids, schedule.Threshold, FaultSchedule.VectorLength, FaultSchedule.RingBits, 0, [], schedule.Malicious);
        var signers = ids.ToDictionary(i => i, _ => System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256));
        var pki = ids.ToDictionary(i => i, i => signers[i].ExportSubjectPublicKeyInfo());
        var context = SecAggSigningContext.Of("model", 1, RoundStages.Training);
        var clients = ids.ToDictionary(i => i, i => schedule.Malicious ? new SecAggClient(parameters, i, signers[i], pki, context) : new SecAggClient(parameters, i));
        var faults = schedule.Faults.ToDictionary(f => f.Id);
        try
        {
            var store = new Store();
            var arrivals = StageArrivals.Empty;
            var alive = ids.ToHashSet();
            var active = ids;
            IReadOnlyDictionary<int, KeysBroadcast>? keys = null;
            IReadOnlyDictionary<int, ForwardedShares>? shares = null;
            UnmaskRequest? unmask = null;
            long now = 0;
            var phaseIndex = 0;
            foreach (var phase in RoundCoordinator.PhasesOf(parameters))
            {
                var open = now;
                var stall = schedule.Stalls[phaseIndex++] is { } s ? (From: open + s.StartMs, To: open + s.StartMs + s.LengthMs, s.HttpToo) : ((long From, long To, bool HttpToo)?)null;

                // Clients produce their messages and choose when they post them.
                var posts = new List<(long At, int Id, object Message)>();
                var silentAfter = new List<int>();
                foreach (var id in active)
                {
                    if (!alive.Contains(id)) continue;
                    var f = faults[id];
                    if (f.DropAt == phase && !f.DropAfterSending) { alive.Remove(id); continue; }
                    object message;
                    try
                    {
                        message = phase switch
                        {
                            RoundPhase.AdvertiseKeys => clients[id].AdvertiseKeys(),
                            RoundPhase.ShareKeys => Corrupt(clients[id].ShareKeys(keys![id]), f.MalformedTo),
                            RoundPhase.MaskedInput => clients[id].MaskInput(shares![id], schedule.Inputs[id - 1]),
                            RoundPhase.ConsistencyCheck => clients[id].SignSurvivors(unmask!),
                            _ => clients[id].Unmask(unmask!),
                        };
                    }
                    catch (SecAggAbortedException)
                    {
                        alive.Remove(id);   // the client refuses to go on (the model's server is honest, so only when too few remain)
                        continue;
                    }
                    var at = open + (f.LateIn == phase ? FaultSchedule.PhaseMs + schedule.LateMs : f.ThinkMs[phaseIndex - 1]);
                    posts.Add((HttpTime(at, stall), id, message));
                    if (f.DuplicateIn == phase) posts.Add((HttpTime(at + 300, stall), id, message));
                    if (f.DropAt == phase) silentAfter.Add(id);
                }
                posts.Sort((a, b) => a.At != b.At ? a.At.CompareTo(b.At) : a.Id.CompareTo(b.Id));

                // The engine: a queue in message order, processed in batches whenever the host runs the orchestration.
                var collector = new PhaseCollector(active, At(open), TimeSpan.FromMilliseconds(FaultSchedule.PhaseMs), rules.Policy);
                var queue = new List<(long Visible, long Seq, int Id)>();   // Id 0: the deadline timer
                long seq = 0;
                queue.Add((open + FaultSchedule.PhaseMs, seq++, 0));
                var processed = 0;
                var next = 0;
                long closeAt = -1;
                while (closeAt < 0)
                {
                    var pending = queue.Skip(processed).ToList();
                    var wake = pending.Count == 0 ? long.MaxValue : OrchestratorTime(pending.Min(q => q.Visible), stall);
                    var postAt = next < posts.Count ? posts[next].At : long.MaxValue;
                    if (postAt == long.MaxValue && wake == long.MaxValue) throw new InvalidOperationException("the model ran out of events");
                    if (postAt <= wake)
                    {
                        // The HTTP intake: the phase is open until the close, so the message is stored and its event raised.
                        var (at, id, message) = posts[next++];
                        store.Put(phase, id, message);
                        queue.Add((at, seq++, id));
                        continue;
                    }
                    var batch = queue.Skip(processed).Where(q => q.Visible <= wake).OrderBy(q => q.Seq).ToList();
                    queue = [.. queue.Take(processed), .. batch, .. queue.Skip(processed).Where(q => q.Visible > wake)];
                    foreach (var item in batch)
                    {
                        processed++;
                        if (item.Id != 0)
                        {
                            collector.Arrived(item.Id);
                            if (collector.Complete) { closeAt = wake; break; }
                        }
                        else if (collector.DeadlineObserved(At(wake))) { closeAt = wake; break; }
                        else queue.Add(((long)(collector.Deadline - Origin).TotalMilliseconds, seq++, 0));   // extended: a new timer
                    }
                }

                // Posts after the close are refused (409): the client is out of the stage.
                foreach (var (at, id, _) in posts.Skip(next))
                    if (!store.Has(phase, id)) alive.Remove(id);

                var got = rules.CountStoredAtClose
                    ? RoundCoordinator.ArrivalsAtClose(active, collector.Got, id => store.Has(phase, id))
                    : collector.Got;
                arrivals = arrivals.With(phase, got);
                var result = schedule.Malicious
                    ? RoundCoordinator.ClosePhase(parameters, phase, arrivals, store, pki, context)
                    : RoundCoordinator.ClosePhase(parameters, phase, arrivals, store);
                if (result.AbortReason is not null) return new ModelOutcome(false, $"{phase}: {result.AbortReason}", [], null, null);
                keys = result.Keys ?? keys;
                shares = result.Shares ?? shares;
                unmask = result.Unmask ?? unmask;
                foreach (var id in silentAfter) alive.Remove(id);
                foreach (var id in active.Except(result.Next)) alive.Remove(id);
                active = result.Next;
                now = closeAt + 50;
                if (phase == RoundPhase.Unmasking)
                    return new ModelOutcome(true, null, result.Result!.Included, result.Result.Sum, null);
            }
            throw new InvalidOperationException("unreachable");
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
            foreach (var k in signers.Values) k.Dispose();
        }
    }

    /// <summary>Runs a schedule and checks the properties; the problem, or null.</summary>
    public static ModelOutcome Check(FaultSchedule schedule, RoundRules rules)
    {
        ModelOutcome outcome;
        try
        {
            outcome = Run(schedule, rules);
        }
        catch (Exception e)
        {
            return new ModelOutcome(false, null, [], null, $"threw {e.GetType().Name}: {e.Message}");
        }
        string? problem = null;
        if (outcome.Completed)
        {
            var expected = new uint[FaultSchedule.VectorLength];
            foreach (var id in outcome.Included)
                for (var k = 0; k < expected.Length; k++) expected[k] = (expected[k] + schedule.Inputs[id - 1][k]) & ((1u << FaultSchedule.RingBits) - 1);
            var missing = schedule.Reliable.Except(outcome.Included).ToArray();
            if (!expected.AsSpan().SequenceEqual(outcome.Sum)) problem = "the sum is not the plaintext sum of the included inputs";
            else if (missing.Length > 0) problem = $"reliable clients [{string.Join(",", missing)}] are missing from the sum";
        }
        else if (string.IsNullOrWhiteSpace(outcome.Reason)) problem = "failed without a reason";
        else if (schedule.MustComplete) problem = $"failed although {schedule.Reliable.Length} reliable clients (t = {schedule.Threshold}) survived: {outcome.Reason}";
        return outcome with { Problem = problem is null ? null : $"{problem} ({schedule})" };
    }

    /// <summary>
    /// The simulate failure, as a schedule: 5 clients, t = 2, client 3 goes silent after sharing its keys, and the host
    /// stops running the orchestration from 100 ms into Unmasking until after its deadline while the intake still answers.
    /// </summary>
    public static FaultSchedule SlowUnmasking()
    {
        var baseline = FaultSchedule.Generate(1);
        var faults = Enumerable.Range(1, 5).Select(id => new ClientFaults(id, id == 3 ? RoundPhase.MaskedInput : null, false, null, null, 0, [200 + id, 300 + id, 400 + id, 500 + id * 100])).ToArray();
        var stalls = new HostStall?[] { null, null, null, new HostStall(100, FaultSchedule.PhaseMs + 5_000, HttpToo: false) };
        return new FaultSchedule(9_001, 5, 2, faults, stalls, baseline.Inputs.Take(5).ToArray(), 1_000);
    }

    private static DateTime At(long ms) => Origin.AddMilliseconds(ms);

    /// <summary>A POST during a stall of the intake is served when the stall ends (the client retries).</summary>
    private static long HttpTime(long at, (long From, long To, bool HttpToo)? stall) =>
        stall is { HttpToo: true } s && at >= s.From && at < s.To ? s.To : at;

    /// <summary>The orchestration runs something visible at <paramref name="at"/> then, or when a stall ends.</summary>
    private static long OrchestratorTime(long at, (long From, long To, bool HttpToo)? stall) =>
        stall is { } s && at >= s.From && at < s.To ? s.To : at;

    private static ShareKeysMessage Corrupt(ShareKeysMessage message, int to)
    {
        if (to == 0) return message;
        var bundles = message.Shares.Select(b =>
        {
            if (b.To != to) return b;
            var bytes = (byte[])b.Ciphertext.Clone();
            bytes[^1] ^= 0x5A;   // the recipient's AES-GCM tag check fails: it complains
            return b with { Ciphertext = bytes };
        }).ToArray();
        return message with { Shares = bundles };
    }

    private sealed class Store : IRoundMessageSource
    {
        private readonly Dictionary<(RoundPhase, int), object> _messages = [];

        public void Put(RoundPhase phase, int id, object message) => _messages.TryAdd((phase, id), message);   // a duplicate keeps the first
        public bool Has(RoundPhase phase, int id) => _messages.ContainsKey((phase, id));
        public AdvertiseKeysMessage? AdvertiseKeys(int id) => _messages.GetValueOrDefault((RoundPhase.AdvertiseKeys, id)) as AdvertiseKeysMessage;
        public ShareKeysMessage? ShareKeys(int id) => _messages.GetValueOrDefault((RoundPhase.ShareKeys, id)) as ShareKeysMessage;
        public MaskedInputMessage? MaskedInput(int id) => _messages.GetValueOrDefault((RoundPhase.MaskedInput, id)) as MaskedInputMessage;
        public UnmaskResponse? Unmasking(int id) => _messages.GetValueOrDefault((RoundPhase.Unmasking, id)) as UnmaskResponse;
        public ConsistencySignature? ConsistencyCheck(int id) => _messages.GetValueOrDefault((RoundPhase.ConsistencyCheck, id)) as ConsistencySignature;
    }
}
