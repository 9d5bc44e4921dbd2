using System.Collections.Concurrent;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>Answer to one received message: accepted, or rejected with the reason.</summary>
public sealed record SecAggVerdict(bool Accepted, string? Reason)
{
    internal static readonly SecAggVerdict Ok = new(true, null);
    internal static SecAggVerdict Reject(string reason) => new(false, reason);
}

/// <summary>
/// The server side of secure aggregation (Bonawitz et al., CCS 2017; Bell et al., CCS 2020 for a
/// sparse graph) as a state machine: Receive* accepts or rejects one client message (a malformed
/// message excludes its sender with the reason recorded, never throws), Close* ends a phase and
/// returns what to send to each client, <see cref="Finish"/> reconstructs the secrets it needs
/// and returns the exact sum of the surviving inputs in Z_(2^k). The server only ever learns that
/// sum: it asks for the self-mask seed of a survivor or the masking key of a dropped client, never both.
/// </summary>
public sealed class SecAggServer
{
    private readonly SecAggRoundParameters _p;
    private NeighbourGraph _graph;
    private readonly IReadOnlyDictionary<int, byte[]>? _verificationKeys;
    private readonly byte[] _context;
    private readonly byte[] _parametersDigest;
    private byte[]? _viewDigest;
    private readonly Dictionary<int, ConsistencySignature> _consistency = [];
    private HashSet<int>? _signers;
    private readonly Dictionary<int, AdvertiseKeysMessage> _advertised = [];
    private readonly Dictionary<int, ShareKeysMessage> _shared = [];
    private readonly Dictionary<int, MaskedInputMessage> _masked = [];
    private readonly Dictionary<int, UnmaskResponse> _responses = [];
    private readonly List<SecAggExclusion> _exclusions = [];
    private readonly HashSet<int> _excluded = [];
    private int[] _survivors = [];
    private int[] _dropped = [];

    /// <summary>The phase whose messages the server is collecting.</summary>
    public SecAggPhase Phase { get; private set; } = SecAggPhase.AdvertiseKeys;

    /// <summary>Clients left out so far, with the phase and reason.</summary>
    public IReadOnlyList<SecAggExclusion> Exclusions => _exclusions;

    /// <summary>The neighbour graph of the round (with a joint seed: fixed when AdvertiseKeys closes).</summary>
    public NeighbourGraph Graph => _graph;

    /// <param name="parameters">The round's public parameters.</param>
    /// <param name="verificationKeys">PKI: client id to SubjectPublicKeyInfo (required when the round requires signatures).</param>
    /// <param name="context">The signing context the clients use (see <see cref="SecAggClient"/>).</param>
    /// <exception cref="ArgumentException">invalid parameters, signatures required without a PKI, or a server-chosen seed where the seed is joint.</exception>
    public SecAggServer(SecAggRoundParameters parameters, IReadOnlyDictionary<int, byte[]>? verificationKeys = null, byte[]? context = null)
    {
        _p = parameters ?? throw new ArgumentNullException(nameof(parameters));
        _graph = parameters.BuildGraph();
        if (parameters.RequireSignatures && verificationKeys is null) throw new ArgumentException("Signatures are required but no verification keys were given.");
        if (parameters.RequireSignatures && parameters.NeighbourDegree > 0 && parameters.GraphSeed is { Length: > 0 })
            throw new ArgumentException("The malicious variant derives the graph seed from the advertisements: GraphSeed must be empty.");
        _verificationKeys = verificationKeys;
        _context = (byte[]?)context?.Clone() ?? [];
        _parametersDigest = SecAggCrypto.ParametersDigest(parameters);
    }

    // ---------------------------------------------------------------- phase 0

    /// <summary>Receives a client's advertised keys.</summary>
    public SecAggVerdict ReceiveAdvertiseKeys(AdvertiseKeysMessage message)
    {
        if (Phase != SecAggPhase.AdvertiseKeys) return SecAggVerdict.Reject("phase AdvertiseKeys is closed");
        if (message is null) return SecAggVerdict.Reject("empty message");
        var id = message.ClientId;
        if (!_graph.Contains(id)) return SecAggVerdict.Reject($"client {id} is not in this round");
        if (_excluded.Contains(id) || _advertised.ContainsKey(id)) return SecAggVerdict.Reject($"duplicate message from client {id}");
        if (!SecAggCrypto.TryImportPublic(message.EncryptionPublicKey, out var c) || !SecAggCrypto.TryImportPublic(message.MaskingPublicKey, out var s))
            return Exclude(id, SecAggPhase.AdvertiseKeys, "advertised keys are not valid uncompressed P-256 points");
        c!.Dispose(); s!.Dispose();
        if (message.EncryptionPublicKey.AsSpan().SequenceEqual(message.MaskingPublicKey))
            return Exclude(id, SecAggPhase.AdvertiseKeys, "the encryption and masking keys are the same");
        foreach (var other in _advertised.Values)
            if (other.MaskingPublicKey.AsSpan().SequenceEqual(message.MaskingPublicKey) || other.EncryptionPublicKey.AsSpan().SequenceEqual(message.EncryptionPublicKey))
                return Exclude(id, SecAggPhase.AdvertiseKeys, $"advertised keys repeat client {other.ClientId}'s");
        if (_p.RequireSignatures && (!_verificationKeys!.TryGetValue(id, out var vk) ||
                !SecAggCrypto.Verify(vk, SecAggCrypto.AdvertisementSignedBytes(_context, _parametersDigest, id, message.EncryptionPublicKey, message.MaskingPublicKey), message.Signature)))
            return Exclude(id, SecAggPhase.AdvertiseKeys, "signature over the advertised keys does not verify");
        _advertised[id] = message;
        return SecAggVerdict.Ok;
    }

    /// <summary>Ends phase 0; returns, per surviving client, its neighbours' keys.</summary>
    /// <exception cref="SecAggAbortedException">fewer than t clients advertised keys.</exception>
    public IReadOnlyDictionary<int, KeysBroadcast> CloseAdvertiseKeys()
    {
        Expect(SecAggPhase.AdvertiseKeys);
        if (_advertised.Count < _p.Threshold) Abort($"only {_advertised.Count} clients advertised keys; threshold is {_p.Threshold}");
        if (_p.RequireSignatures)
        {
            _viewDigest = SecAggCrypto.ViewDigest(_parametersDigest, _advertised.Values.Select(m => (m.ClientId, m.EncryptionPublicKey, m.MaskingPublicKey)));
            // The graph is fixed by the signed advertisements, which the server cannot forge or predict (Bell et al. 2020 assume a
            // graph the adversary does not choose); every client recomputes it from the same set.
            if (_p.JointGraphSeed) _graph = NeighbourGraph.Harary(_p.ClientIds, _p.NeighbourDegree, _viewDigest);
        }
        var result = new Dictionary<int, KeysBroadcast>(_advertised.Count);
        var all = _advertised.Values.OrderBy(m => m.ClientId).ToArray();
        foreach (var u in _advertised.Keys)
        {
            var keys = new List<AdvertiseKeysMessage>();
            if (_p.JointGraphSeed)
            {
                foreach (var m in all) if (m.ClientId != u) keys.Add(m);   // the client needs all of U1 to recompute the seed
            }
            else
            {
                foreach (var v in _graph.NeighboursOf(u))
                    if (_advertised.TryGetValue(v, out var m)) keys.Add(m);
            }
            result[u] = new KeysBroadcast(keys.ToArray());
        }
        Phase = SecAggPhase.ShareKeys;
        return result;
    }

    // ---------------------------------------------------------------- phase 1

    /// <summary>Receives a client's encrypted shares; checks there is exactly one well-sized bundle per neighbour in U1.</summary>
    public SecAggVerdict ReceiveShareKeys(ShareKeysMessage message)
    {
        if (Phase != SecAggPhase.ShareKeys) return SecAggVerdict.Reject("phase ShareKeys is not open");
        if (message is null) return SecAggVerdict.Reject("empty message");
        var id = message.ClientId;
        if (!_advertised.ContainsKey(id)) return SecAggVerdict.Reject($"client {id} did not advertise keys");
        if (_excluded.Contains(id) || _shared.ContainsKey(id)) return SecAggVerdict.Reject($"duplicate message from client {id}");
        if (message.SelfMaskCommitment is null || message.SelfMaskCommitment.Length != 32)
            return Exclude(id, SecAggPhase.ShareKeys, "self-mask commitment is not 32 bytes");
        var expected = new HashSet<int>();
        foreach (var v in _graph.NeighboursOf(id)) if (_advertised.ContainsKey(v)) expected.Add(v);
        var seen = new HashSet<int>();
        foreach (var share in message.Shares ?? [])
        {
            if (share is null) return Exclude(id, SecAggPhase.ShareKeys, "a share entry is empty");
            if (share.From != id) return Exclude(id, SecAggPhase.ShareKeys, $"a share claims to come from client {share.From}");
            if (!expected.Contains(share.To)) return Exclude(id, SecAggPhase.ShareKeys, $"a share is addressed to {share.To}, not a neighbour in U1");
            if (!seen.Add(share.To)) return Exclude(id, SecAggPhase.ShareKeys, $"two shares are addressed to client {share.To}");
            if (share.Ciphertext is null || share.Ciphertext.Length != SecAggCrypto.BundleCipherLength)
                return Exclude(id, SecAggPhase.ShareKeys, $"the share for client {share.To} has {share.Ciphertext?.Length ?? 0} bytes, expected {SecAggCrypto.BundleCipherLength}");
        }
        if (seen.Count != expected.Count) return Exclude(id, SecAggPhase.ShareKeys, $"shares for {expected.Count - seen.Count} neighbours are missing");
        _shared[id] = message;
        return SecAggVerdict.Ok;
    }

    /// <summary>Ends phase 1; returns, per client in U2, the bundles addressed to it.</summary>
    /// <exception cref="SecAggAbortedException">fewer than t clients shared keys.</exception>
    public IReadOnlyDictionary<int, ForwardedShares> CloseShareKeys()
    {
        Expect(SecAggPhase.ShareKeys);
        if (_shared.Count < _p.Threshold) Abort($"only {_shared.Count} clients shared keys; threshold is {_p.Threshold}");
        var inbox = _shared.Keys.ToDictionary(v => v, _ => new List<EncryptedShare>());
        foreach (var m in _shared.Values)
            foreach (var share in m.Shares)
                if (inbox.TryGetValue(share.To, out var list)) list.Add(share);
        Phase = SecAggPhase.MaskedInputCollection;
        return inbox.ToDictionary(kv => kv.Key, kv => new ForwardedShares(kv.Value.ToArray()));
    }

    // ---------------------------------------------------------------- phase 2

    /// <summary>Receives a masked input (k bits per entry) and the sender's complaints about shares.</summary>
    public SecAggVerdict ReceiveMaskedInput(MaskedInputMessage message)
    {
        if (Phase != SecAggPhase.MaskedInputCollection) return SecAggVerdict.Reject("phase MaskedInputCollection is not open");
        if (message is null) return SecAggVerdict.Reject("empty message");
        var id = message.ClientId;
        if (!_shared.ContainsKey(id)) return SecAggVerdict.Reject($"client {id} did not share keys");
        if (_excluded.Contains(id) || _masked.ContainsKey(id)) return SecAggVerdict.Reject($"duplicate message from client {id}");
        var expectedBytes = RingCodec.PackedLength(_p.VectorLength, _p.RingBits);
        if (message.MaskedInput is null || message.MaskedInput.Length != expectedBytes)
            return Exclude(id, SecAggPhase.MaskedInputCollection, $"masked input has {message.MaskedInput?.Length ?? 0} bytes, expected {expectedBytes}");
        if (_p.RingBits % 8 != 0 && (_p.VectorLength * (long)_p.RingBits) % 8 != 0)
        {
            var spare = 8 - (int)(_p.VectorLength * (long)_p.RingBits % 8);
            if ((message.MaskedInput[^1] >> (8 - spare)) != 0)
                return Exclude(id, SecAggPhase.MaskedInputCollection, "masked input has bits set past its last entry");
        }
        var accused = new HashSet<int>();
        foreach (var complaint in message.Complaints ?? [])
        {
            if (complaint is null || !_shared.ContainsKey(complaint.Accused) || !_graph.AreNeighbours(id, complaint.Accused))
                return Exclude(id, SecAggPhase.MaskedInputCollection, $"complaint names client {complaint?.Accused}, who sent it no share");
            if (!accused.Add(complaint.Accused)) return Exclude(id, SecAggPhase.MaskedInputCollection, $"two complaints name client {complaint.Accused}");
            if (complaint.ShareKey is { } key && key.Length != SecAggCrypto.ShareKeyLength)
                return Exclude(id, SecAggPhase.MaskedInputCollection, $"the complaint about client {complaint.Accused} reveals a {key.Length}-byte key, not {SecAggCrypto.ShareKeyLength}");
        }
        _masked[id] = message;
        return SecAggVerdict.Ok;
    }

    /// <summary>
    /// Ends phase 2, judging each complaint by its proof (<see cref="ShareComplaint"/>): a client whose bundle is proven
    /// bad is excluded from the sum, a client whose complaint is disproved is excluded for the false accusation, and an
    /// unproven complaint changes nobody's place, it only means the complainer holds no share of the accused.
    /// Returns the unmasking request for all responders.
    /// </summary>
    /// <exception cref="SecAggAbortedException">fewer than t inputs remain, or a secret has fewer than t possible holders.</exception>
    public UnmaskRequest CloseMaskedInput()
    {
        Expect(SecAggPhase.MaskedInputCollection);
        var unheld = new Dictionary<int, HashSet<int>>();   // accused -> complainers without a usable share of it
        var removed = new HashSet<int>();
        foreach (var m in _masked.Values.OrderBy(m => m.ClientId))
            foreach (var c in m.Complaints ?? [])
            {
                var bundle = _shared[c.Accused].Shares.FirstOrDefault(b => b.To == m.ClientId)?.Ciphertext;
                var (finding, reason) = SecAggCrypto.JudgeComplaint(c.ShareKey, _p.RoundId, c.Accused, m.ClientId, bundle);
                if (finding == ComplaintFinding.Disproved)
                {
                    if (removed.Add(m.ClientId)) Record(m.ClientId, SecAggPhase.MaskedInputCollection, $"its complaint about client {c.Accused} is false: the revealed key opens valid shares");
                    continue;
                }
                if (!unheld.TryGetValue(c.Accused, out var set)) unheld[c.Accused] = set = [];
                set.Add(m.ClientId);
                if (finding == ComplaintFinding.Proven && removed.Add(c.Accused))
                    Record(c.Accused, SecAggPhase.ShareKeys, $"client {m.ClientId} proved its share bundle bad: {reason}");
            }
        _survivors = _masked.Keys.Where(u => !removed.Contains(u)).Order().ToArray();
        _dropped = _shared.Keys.Where(u => !_survivors.Contains(u)).Order().ToArray();
        if (_survivors.Length < _p.Threshold) Abort($"only {_survivors.Length} masked inputs remain; threshold is {_p.Threshold}");
        // Only survivors are asked to unmask (an accused client is out of the sum and is not trusted to reveal
        // anything), so only they count as live share holders; counting accused senders too let this check pass
        // and the unmasking then starve.
        foreach (var u in _survivors.Concat(_dropped))
        {
            // A survivor also holds (and reveals) its own share of its self-mask seed.
            var own = Array.BinarySearch(_survivors, u) >= 0 ? 1 : 0;
            var holders = own + _graph.NeighboursOf(u).Count(v => Array.BinarySearch(_survivors, v) >= 0 && !(unheld.TryGetValue(u, out var a) && a.Contains(v)));
            if (holders < _p.Threshold) Abort($"client {u}'s secret has only {holders} live share holders; threshold is {_p.Threshold}");
        }
        if (_p.RequireSignatures && _survivors.Length < _p.ConsistencyQuorum())
            Abort($"only {_survivors.Length} masked inputs remain; {_p.ConsistencyQuorum()} must sign the survivor set");
        Phase = _p.RequireSignatures ? SecAggPhase.ConsistencyCheck : SecAggPhase.Unmasking;
        return new UnmaskRequest(_survivors, _dropped);
    }

    // ---------------------------------------------------------------- consistency check (malicious variant)

    /// <summary>Receives a survivor's signature over U3 (Bonawitz et al. 2017, Figure 4, ConsistencyCheck).</summary>
    public SecAggVerdict ReceiveConsistencySignature(ConsistencySignature message)
    {
        if (Phase != SecAggPhase.ConsistencyCheck) return SecAggVerdict.Reject("phase ConsistencyCheck is not open");
        if (message is null) return SecAggVerdict.Reject("empty message");
        var id = message.ClientId;
        if (Array.BinarySearch(_survivors, id) < 0) return SecAggVerdict.Reject($"client {id} is not a survivor");
        if (_excluded.Contains(id) || _consistency.ContainsKey(id)) return SecAggVerdict.Reject($"duplicate message from client {id}");
        if (!_verificationKeys!.TryGetValue(id, out var vk) ||
            !SecAggCrypto.Verify(vk, SecAggCrypto.ConsistencySignedBytes(_context, _parametersDigest, _viewDigest!, id, _survivors), message.Signature))
            return Exclude(id, SecAggPhase.ConsistencyCheck, "signature over the survivor set does not verify");
        _consistency[id] = message;
        return SecAggVerdict.Ok;
    }

    /// <summary>Ends the consistency check: returns the unmask request carrying every valid signature (U4 = the signers).</summary>
    /// <exception cref="SecAggAbortedException">fewer than <see cref="SecAggRoundParameters.ConsistencyQuorum"/> survivors signed.</exception>
    public UnmaskRequest CloseConsistencyCheck()
    {
        Expect(SecAggPhase.ConsistencyCheck);
        if (_consistency.Count < _p.ConsistencyQuorum())
            Abort($"only {_consistency.Count} survivors signed the survivor set; {_p.ConsistencyQuorum()} must");
        _signers = [.. _consistency.Keys];
        Phase = SecAggPhase.Unmasking;
        return new UnmaskRequest(_survivors, _dropped, _consistency.Values.OrderBy(c => c.ClientId).ToArray());
    }

    // ---------------------------------------------------------------- phase 3

    /// <summary>Receives revealed shares; a response with a share of the wrong kind, owner or shape is rejected whole.</summary>
    public SecAggVerdict ReceiveUnmaskResponse(UnmaskResponse message)
    {
        if (Phase != SecAggPhase.Unmasking) return SecAggVerdict.Reject("phase Unmasking is not open");
        if (message is null) return SecAggVerdict.Reject("empty message");
        var id = message.ClientId;
        if (!_masked.ContainsKey(id)) return SecAggVerdict.Reject($"client {id} sent no masked input");
        if (_signers is not null && !_signers.Contains(id)) return SecAggVerdict.Reject($"client {id} did not sign the survivor set");
        if (_responses.ContainsKey(id)) return SecAggVerdict.Reject($"duplicate message from client {id}");
        var owners = new HashSet<int>();
        foreach (var share in message.Shares ?? [])
        {
            if (share is null) return Exclude(id, SecAggPhase.Unmasking, "a revealed share is empty");
            var expectedKind = Array.BinarySearch(_survivors, share.Owner) >= 0 ? SharedSecretKind.SelfMaskSeed
                : Array.BinarySearch(_dropped, share.Owner) >= 0 ? SharedSecretKind.MaskingKey : (SharedSecretKind)0;
            var own = share.Owner == id && expectedKind == SharedSecretKind.SelfMaskSeed;   // a survivor's own share of its seed
            if (expectedKind == 0 || (!own && !_graph.AreNeighbours(id, share.Owner)))
                return Exclude(id, SecAggPhase.Unmasking, $"revealed a share of client {share.Owner}, which was not requested from it");
            if (share.Kind != expectedKind) return Exclude(id, SecAggPhase.Unmasking, $"revealed the wrong secret of client {share.Owner}");
            if (!owners.Add(share.Owner)) return Exclude(id, SecAggPhase.Unmasking, $"revealed two shares of client {share.Owner}");
            if (share.Share is null || !ShamirSecretSharing.IsWellFormed(share.Share, SecAggCrypto.SecretLength))
                return Exclude(id, SecAggPhase.Unmasking, $"the share of client {share.Owner} is malformed");
        }
        _responses[id] = message;
        return SecAggVerdict.Ok;
    }

    /// <summary>Reconstructs the secrets and returns the exact sum of the survivors' inputs in Z_(2^k).</summary>
    /// <exception cref="SecAggAbortedException">a secret has fewer than t consistent shares: unmasking is refused.</exception>
    public SecAggResult Finish()
    {
        Expect(SecAggPhase.Unmasking);
        var bySecret = new Dictionary<int, List<(int X, byte[] Share)>>();
        foreach (var r in _responses.Values.OrderBy(r => r.ClientId))
            foreach (var s in r.Shares)
            {
                if (!bySecret.TryGetValue(s.Owner, out var list)) bySecret[s.Owner] = list = [];
                list.Add((r.ClientId, s.Share));
            }
        foreach (var u in _survivors.Concat(_dropped))
        {
            var count = bySecret.TryGetValue(u, out var l) ? l.Count : 0;
            if (count < _p.Threshold) Abort($"refusing to unmask: client {u}'s secret has {count} shares, threshold is {_p.Threshold}");
        }

        var lagrangeCache = new ConcurrentDictionary<string, ulong[]>();
        var selfSeeds = new byte[_survivors.Length][];
        var droppedScalars = new byte[_dropped.Length][];
        var failures = new ConcurrentBag<string>();
        var badHolders = new ConcurrentBag<(int Holder, int Owner)>();
        Parallel.For(0, _survivors.Length + _dropped.Length, i =>
        {
            if (i < _survivors.Length)
            {
                var u = _survivors[i];
                var commitment = _shared[u].SelfMaskCommitment;
                selfSeeds[i] = Reconstruct(u, bySecret[u], lagrangeCache,
                    seed => CryptographicOperations.FixedTimeEquals(SecAggCrypto.Commit(_p.RoundId, u, seed), commitment), badHolders)!;
                if (selfSeeds[i] is null) failures.Add($"client {u}'s self-mask seed does not match its commitment, even correcting up to half of the shares beyond {_p.Threshold}");
            }
            else
            {
                var u = _dropped[i - _survivors.Length];
                var pk = _advertised[u].MaskingPublicKey;
                droppedScalars[i - _survivors.Length] = Reconstruct(u, bySecret[u], lagrangeCache,
                    d => { using var key = SecAggCrypto.TryRebuild(d, pk); return key is not null; }, badHolders)!;
                if (droppedScalars[i - _survivors.Length] is null) failures.Add($"client {u}'s masking key does not match its public key, even correcting up to half of the shares beyond {_p.Threshold}");
            }
        });
        if (!failures.IsEmpty) Abort("refusing to unmask: " + string.Join("; ", failures.Order()));
        foreach (var (holder, owner) in badHolders.Distinct().OrderBy(x => x.Holder))
            Record(holder, SecAggPhase.Unmasking, $"revealed a share of client {owner} inconsistent with the others");

        var sum = SumAndUnmask(selfSeeds, droppedScalars);
        Phase = SecAggPhase.Done;
        return new SecAggResult(sum, (int[])_survivors.Clone(), _exclusions.ToArray());
    }

    private uint[] SumAndUnmask(byte[][] selfSeeds, byte[][] droppedScalars)
    {
        // Work items: add each survivor's masked input, remove its self mask, and for each dropped
        // client remove its pairwise masks from surviving neighbours (in chunks, for balance).
        const int PeersPerItem = 32;
        var items = new List<(int Kind, int Index, int From, int To)>();
        for (var i = 0; i < _survivors.Length; i++) items.Add((0, i, 0, 0));
        var survivorSet = new HashSet<int>(_survivors);
        var droppedPeers = new int[_dropped.Length][];
        for (var i = 0; i < _dropped.Length; i++)
        {
            droppedPeers[i] = _graph.NeighboursOf(_dropped[i]).Where(survivorSet.Contains).ToArray();
            for (var from = 0; from < droppedPeers[i].Length; from += PeersPerItem)
                items.Add((1, i, from, Math.Min(from + PeersPerItem, droppedPeers[i].Length)));
        }
        var maskingKeys = new ConcurrentDictionary<int, ECDiffieHellmanPublicKey>();
        var length = _p.VectorLength;
        var total = new uint[length];
        var gate = new object();
        Parallel.For(0, items.Count, () => new uint[length], (k, _, acc) =>
        {
            var (kind, index, from, to) = items[k];
            if (kind == 0)
            {
                var u = _survivors[index];
                RingCodec.UnpackAdd(_masked[u].MaskedInput, _p.RingBits, acc);
                MaskExpander.Apply(selfSeeds[index], acc, subtract: true);
            }
            else
            {
                var u = _dropped[index];
                using var key = SecAggCrypto.TryRebuild(droppedScalars[index], _advertised[u].MaskingPublicKey)!;
                for (var j = from; j < to; j++)
                {
                    var v = droppedPeers[index][j];
                    var pk = maskingKeys.GetOrAdd(v, id => { SecAggCrypto.TryImportPublic(_advertised[id].MaskingPublicKey, out var p); return p!; });
                    var seed = SecAggCrypto.MaskSeed(key, pk, _p.RoundId, u, v);
                    // v added PRG(s_uv) when v < u and subtracted it when v > u; undo that.
                    MaskExpander.Apply(seed, acc, subtract: v < u);
                    CryptographicOperations.ZeroMemory(seed);
                }
            }
            return acc;
        }, acc => { lock (gate) MaskExpander.AddInto(total, acc); });
        foreach (var pk in maskingKeys.Values) pk.Dispose();
        var mask = RingCodec.RingMask(_p.RingBits);
        for (var i = 0; i < total.Length; i++) total[i] &= mask;
        return total;
    }

    /// <summary>
    /// The owner's secret from its revealed shares: the first t (the common case, Lagrange weights cached per holder set), and
    /// when they do not verify, Berlekamp–Welch over all of them, which corrects up to (s − t) / 2 wrong shares wherever they
    /// sit and names their holders. Null when neither gives a secret that verifies.
    /// </summary>
    private byte[]? Reconstruct(int owner, List<(int X, byte[] Share)> shares, ConcurrentDictionary<string, ulong[]> cache,
        Func<byte[], bool> verify, ConcurrentBag<(int, int)> badHolders)
    {
        var t = _p.Threshold;
        var xs = shares.Take(t).Select(s => s.X).ToArray();
        try
        {
            var secret = ShamirSecretSharing.Combine(cache.GetOrAdd(string.Join(',', xs), _ => ShamirSecretSharing.LagrangeAtZero(xs)), shares.Take(t).Select(s => s.Share).ToArray(), SecAggCrypto.SecretLength);
            if (verify(secret)) return secret;
        }
        catch (ArgumentException)
        {
            // Inconsistent shares among the first t: decode below.
        }
        if (shares.Count == t) return null;
        var decoded = ShamirSecretSharing.DecodeWithErrors(shares.Select(s => s.X).ToArray(), shares.Select(s => s.Share).ToArray(), t, SecAggCrypto.SecretLength, out var wrong);
        if (decoded is null || !verify(decoded)) return null;
        foreach (var i in wrong) badHolders.Add((shares[i].X, owner));
        return decoded;
    }

    private SecAggVerdict Exclude(int client, SecAggPhase phase, string reason)
    {
        _excluded.Add(client);
        Record(client, phase, reason);
        return SecAggVerdict.Reject(reason);
    }

    private void Record(int client, SecAggPhase phase, string reason) => _exclusions.Add(new SecAggExclusion(client, phase, reason));

    private static string Truncate(string? s) => s is null ? "(no reason)" : s.Length <= 200 ? s : s[..200];

    private void Expect(SecAggPhase phase)
    {
        if (Phase != phase) throw new InvalidOperationException($"The server is in phase {Phase}, not {phase}.");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Abort(string reason)
    {
        Phase = SecAggPhase.Done;
        throw new SecAggAbortedException(reason);
    }
}
