using System.Diagnostics;
using System.Security.Cryptography;

namespace Serverless.Federation.SecureAggregation;

/// <summary>How a round is securely aggregated.</summary>
public sealed record SecureAggregationOptions
{
    /// <summary>Ring width k: inputs are fixed-point in Z_(2^k); k/8 bytes per entry on the wire.</summary>
    public int RingBits { get; init; } = 32;

    /// <summary>t = floor(fraction * neighbourhood size) + 1 shares reconstruct a secret.</summary>
    public double ThresholdFraction { get; init; } = 0.5;

    /// <summary>Use SecAgg+ (Harary graph of degree O(log n)) instead of the complete graph.</summary>
    public bool SecAggPlus { get; init; }

    /// <summary>SecAgg+ degree; 0 = <see cref="NeighbourGraph.RecommendedDegree"/>.</summary>
    public int Degree { get; init; }

    /// <summary>Per-coordinate bound of encoded values when clients do not clip (they are clamped to it).</summary>
    public float ClipRange { get; init; } = 1f;

    /// <summary>Malicious-server variant: advertised keys are signed.</summary>
    public bool RequireSignatures { get; init; }

    /// <summary>Round parameters for <paramref name="clientIds"/>.</summary>
    public SecAggRoundParameters RoundParameters(IReadOnlyList<int> clientIds, int vectorLength, byte[]? roundId = null, byte[]? graphSeed = null)
    {
        var n = clientIds.Count;
        var degree = SecAggPlus ? (Degree > 0 ? Degree : NeighbourGraph.RecommendedDegree(n)) : 0;
        if (degree >= n - 1) degree = 0;
        var neighbourhood = degree == 0 ? n - 1 : degree;
        var threshold = Math.Clamp((int)Math.Floor(ThresholdFraction * neighbourhood) + 1, 1, neighbourhood);
        return new SecAggRoundParameters(roundId ?? RandomNumberGenerator.GetBytes(32), clientIds.ToArray(), threshold, vectorLength, RingBits, degree,
            degree == 0 ? [] : graphSeed ?? RandomNumberGenerator.GetBytes(32), RequireSignatures);
    }
}

/// <summary>Per-run measurements: wall time spent by the server and by each client, and bytes each client uploaded.</summary>
public sealed record SecAggRunStats(TimeSpan ServerTime, IReadOnlyDictionary<int, TimeSpan> ClientTimes, IReadOnlyDictionary<int, long> BytesUploaded);

/// <summary>
/// Runs the whole secure-aggregation protocol in process, the server and every client state
/// machine exchanging the real messages, with dropouts injected before any phase. Used by the
/// simulator and the benchmark; the durable orchestration moves the same messages over HTTP.
/// </summary>
public static class SecureAggregationRunner
{
    /// <summary>Runs one round over ring inputs; <paramref name="dropBefore"/> names the phase before which a client goes silent.</summary>
    /// <exception cref="SecAggAbortedException">too few clients survive.</exception>
    public static (SecAggResult Result, SecAggRunStats Stats) Run(SecAggRoundParameters parameters,
        IReadOnlyDictionary<int, uint[]> inputs, IReadOnlyDictionary<int, SecAggPhase>? dropBefore = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(inputs);
        dropBefore ??= new Dictionary<int, SecAggPhase>();
        bool Alive(int id, SecAggPhase phase) => !dropBefore.TryGetValue(id, out var p) || p > phase;
        var clientTime = parameters.ClientIds.ToDictionary(i => i, _ => TimeSpan.Zero);
        var bytes = parameters.ClientIds.ToDictionary(i => i, _ => 0L);
        var serverTime = TimeSpan.Zero;
        T Server<T>(Func<T> f) { var s = Stopwatch.GetTimestamp(); var r = f(); serverTime += Stopwatch.GetElapsedTime(s); return r; }
        T Client<T>(int id, Func<T> f) { var s = Stopwatch.GetTimestamp(); var r = f(); clientTime[id] += Stopwatch.GetElapsedTime(s); return r; }

        var server = Server(() => new SecAggServer(parameters));
        var clients = new Dictionary<int, SecAggClient>();
        foreach (var id in parameters.ClientIds) clients[id] = Client(id, () => new SecAggClient(parameters, id));
        try
        {
            foreach (var (id, c) in clients)
            {
                if (!Alive(id, SecAggPhase.AdvertiseKeys)) continue;
                var m = Client(id, c.AdvertiseKeys);
                bytes[id] += WireSize.Of(m);
                Server(() => server.ReceiveAdvertiseKeys(m));
            }
            var keys = Server(server.CloseAdvertiseKeys);
            foreach (var (id, k) in keys)
            {
                if (!Alive(id, SecAggPhase.ShareKeys)) continue;
                var m = TryClient(id, () => clients[id].ShareKeys(k));
                if (m is null) continue;
                bytes[id] += WireSize.Of(m);
                Server(() => server.ReceiveShareKeys(m));
            }
            var forwarded = Server(server.CloseShareKeys);
            foreach (var (id, f) in forwarded)
            {
                if (!Alive(id, SecAggPhase.MaskedInputCollection)) continue;
                if (!inputs.TryGetValue(id, out var x)) continue;
                var m = TryClient(id, () => clients[id].MaskInput(f, x));
                if (m is null) continue;
                bytes[id] += WireSize.Of(m);
                Server(() => server.ReceiveMaskedInput(m));
            }
            var request = Server(server.CloseMaskedInput);
            foreach (var (id, c) in clients)
            {
                if (c.Phase != SecAggPhase.Unmasking || !Alive(id, SecAggPhase.Unmasking)) continue;
                var m = TryClient(id, () => c.Unmask(request));
                if (m is null) continue;
                bytes[id] += WireSize.Of(m);
                Server(() => server.ReceiveUnmaskResponse(m));
            }
            var result = Server(server.Finish);
            return (result, new SecAggRunStats(serverTime, clientTime, bytes));
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }

        T? TryClient<T>(int id, Func<T> f) where T : class
        {
            try { return Client(id, f); }
            catch (SecAggAbortedException) { return null; }   // the client refuses to go on: to the server it looks like a dropout
        }
    }
}

/// <summary>Bytes of a message on the wire in a compact binary encoding: byte arrays as they are, 4 bytes per integer, 1 per enum.</summary>
public static class WireSize
{
    /// <summary>Advertise: id, two 65-byte keys, signature.</summary>
    public static long Of(AdvertiseKeysMessage m) => 4 + m.EncryptionPublicKey.Length + m.MaskingPublicKey.Length + m.Signature.Length;

    /// <summary>Shares: id, commitment, and per recipient its id and the bundle.</summary>
    public static long Of(ShareKeysMessage m) => 4 + m.SelfMaskCommitment.Length + m.Shares.Sum(s => 4L + s.Ciphertext.Length);

    /// <summary>Masked input: id, packed vector, complaints.</summary>
    public static long Of(MaskedInputMessage m) => 4 + m.MaskedInput.Length + m.Complaints.Sum(c => 4L + c.Reason.Length + (c.ShareKey?.Length ?? 0));

    /// <summary>Unmasking: id and per share owner, kind, share.</summary>
    public static long Of(UnmaskResponse m) => 4 + m.Shares.Sum(s => 5L + s.Share.Length);
}

/// <summary>Secure aggregation of real-valued client updates: weighting, fixed-point encoding, the protocol, decoding.</summary>
public static class SecureUpdateAggregation
{
    /// <summary>The outcome: the weighted mean of the included updates and what the protocol reported.</summary>
    public sealed record Outcome(float[] Mean, double TotalWeight, IReadOnlyList<string> Included, IReadOnlyList<RoundExclusion> Excluded,
        SecAggRunStats Stats, int RingBits, int VectorLength);

    /// <summary>
    /// Each client scales its (already clipped) update by w = weight / maxWeight, appends w, encodes
    /// both with unbiased stochastic rounding into Z_(2^k) and runs the protocol; the server divides
    /// the decoded sum by the summed weights. The server sees only the sum.
    /// </summary>
    /// <param name="updates">Client id, update, weight (e.g. example count).</param>
    /// <param name="options">Protocol options.</param>
    /// <param name="coordinateBound">Per-coordinate bound of the updates (the codec's range).</param>
    /// <param name="dropBefore">Clients that go silent before a phase.</param>
    /// <param name="random">Randomness of the stochastic rounding (seeded in simulations).</param>
    public static Outcome Aggregate(IReadOnlyList<(string Id, float[] Update, double Weight)> updates, SecureAggregationOptions options,
        float coordinateBound, IReadOnlyDictionary<string, SecAggPhase>? dropBefore, Random random)
    {
        if (updates.Count < 2) throw new ArgumentException("Secure aggregation needs at least two clients.", nameof(updates));
        var length = updates[0].Update.Length;
        var maxWeight = updates.Max(u => u.Weight);
        if (!(maxWeight > 0)) throw new ArgumentException("Weights must be positive.", nameof(updates));
        var ids = Enumerable.Range(1, updates.Count).ToArray();
        var p = options.RoundParameters(ids, length + 1);
        var codec = new RingCodec(options.RingBits, coordinateBound, updates.Count);
        var inputs = new Dictionary<int, uint[]>();
        var scaled = new float[length + 1];
        for (var k = 0; k < updates.Count; k++)
        {
            var (_, update, weight) = updates[k];
            if (update.Length != length) throw new ArgumentException("Updates differ in length.", nameof(updates));
            var w = (float)(weight / maxWeight);
            for (var i = 0; i < length; i++) scaled[i] = update[i] * w;
            scaled[length] = w * coordinateBound;
            var ring = new uint[length + 1];
            codec.EncodeStochastic(scaled, ring, random);
            inputs[ids[k]] = ring;
        }
        var drops = new Dictionary<int, SecAggPhase>();
        if (dropBefore is not null)
            for (var k = 0; k < updates.Count; k++)
                if (dropBefore.TryGetValue(updates[k].Id, out var phase)) drops[ids[k]] = phase;
        var (result, stats) = SecureAggregationRunner.Run(p, inputs, drops);
        var decoded = new float[length + 1];
        codec.Decode(result.Sum, decoded);
        var totalW = decoded[length] / coordinateBound;
        var mean = new float[length];
        if (totalW > 0) for (var i = 0; i < length; i++) mean[i] = decoded[i] / totalW;
        var included = result.Included.Select(i => updates[i - 1].Id).ToArray();
        var excluded = result.Exclusions.Select(e => new RoundExclusion(updates[e.ClientId - 1].Id, $"secure aggregation, {e.Phase}: {e.Reason}")).ToArray();
        return new Outcome(mean, totalW * maxWeight, included, excluded, stats, options.RingBits, length + 1);
    }
}
