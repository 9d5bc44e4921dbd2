namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// The client side of secure aggregation (Bonawitz et al., CCS 2017, Figure 4; SecAgg+ when the
/// round's graph is sparse). One instance per client per round; call the phase methods in order.
/// A server message that would let the server learn more than the sum (too few peers, a client
/// listed as both dropped and surviving, keys that fail their signature) makes the client abort
/// with <see cref="SecAggAbortedException"/>.
/// </summary>
public sealed class SecAggClient : IDisposable
{
    private readonly SecAggRoundParameters _parameters;
    private NeighbourGraph _graph;
    private readonly ECDsa? _signingKey;
    private readonly IReadOnlyDictionary<int, byte[]>? _verificationKeys;
    private readonly byte[] _context;
    private readonly byte[] _parametersDigest;
    private byte[]? _viewDigest;
    private int[]? _signedSurvivors;
    private readonly ECDiffieHellman _encryptionKey;
    private readonly ECDiffieHellman _maskingKey;
    private readonly byte[] _selfMaskSeed;
    private readonly Dictionary<int, ECDiffieHellmanPublicKey> _peerMaskingKeys = [];
    private readonly Dictionary<int, ECDiffieHellmanPublicKey> _peerEncryptionKeys = [];
    private readonly Dictionary<int, (byte[] S, byte[] B)> _heldShares = [];
    private HashSet<int> _maskedWith = [];

    /// <summary>This client's id (its Shamir x-coordinate).</summary>
    public int ClientId { get; }

    /// <summary>The next phase this client expects.</summary>
    public SecAggPhase Phase { get; private set; } = SecAggPhase.AdvertiseKeys;

    /// <param name="parameters">The round's public parameters.</param>
    /// <param name="clientId">This client's id; must be one of the round's clients.</param>
    /// <param name="signingKey">ECDSA P-256 key whose public half the PKI holds (required when the round requires signatures).</param>
    /// <param name="verificationKeys">PKI: client id to SubjectPublicKeyInfo of its ECDSA key (required when the round requires signatures).</param>
    /// <param name="context">Bound into every signature besides the parameters: who runs the round (federation, round number, stage), so a
    /// signature from one federation or stage never verifies in another. Empty when not given.</param>
    /// <exception cref="ArgumentException">invalid parameters, an unknown client, or a missing key.</exception>
    /// <exception cref="SecAggAbortedException">malicious variant: the threshold is below <see cref="SecAggRoundParameters.MaliciousThresholdFloor()"/>,
    /// or the server chose the sparse graph's seed.</exception>
    public SecAggClient(SecAggRoundParameters parameters, int clientId, ECDsa? signingKey = null, IReadOnlyDictionary<int, byte[]>? verificationKeys = null, byte[]? context = null)
    {
        _parameters = parameters ?? throw new ArgumentNullException(nameof(parameters));
        _graph = parameters.BuildGraph();
        if (!_graph.Contains(clientId)) throw new ArgumentException($"Client {clientId} is not in this round.", nameof(clientId));
        if (parameters.RequireSignatures && (signingKey is null || verificationKeys is null))
            throw new ArgumentException("This round requires a signing key and the PKI's verification keys.");
        RefuseUnsafeParameters(parameters, _graph, clientId);
        ClientId = clientId;
        _signingKey = signingKey;
        _verificationKeys = verificationKeys;
        _context = (byte[]?)context?.Clone() ?? [];
        _parametersDigest = SecAggCrypto.ParametersDigest(parameters);
        _encryptionKey = SecAggCrypto.NewKeyPair();
        _maskingKey = SecAggCrypto.NewKeyPair();
        _selfMaskSeed = RandomNumberGenerator.GetBytes(SecAggCrypto.SecretLength);
    }

    private SecAggClient(SecAggRoundParameters parameters, NeighbourGraph graph, SecAggClientState state, ECDsa? signingKey, IReadOnlyDictionary<int, byte[]>? verificationKeys, byte[]? context)
    {
        _parameters = parameters;
        _graph = graph;
        ClientId = state.ClientId;
        _signingKey = signingKey;
        _verificationKeys = verificationKeys;
        _context = (byte[]?)context?.Clone() ?? [];
        _parametersDigest = SecAggCrypto.ParametersDigest(parameters);
        _viewDigest = (byte[]?)state.ViewDigest?.Clone();
        _signedSurvivors = state.SignedSurvivors is null ? null : [.. state.SignedSurvivors.Order()];
        _encryptionKey = SecAggCrypto.TryRebuild(state.EncryptionPrivateKey, state.EncryptionPublicKey) ?? throw new ArgumentException("The state's encryption key pair does not match.");
        _maskingKey = SecAggCrypto.TryRebuild(state.MaskingPrivateKey, state.MaskingPublicKey) ?? throw new ArgumentException("The state's masking key pair does not match.");
        _selfMaskSeed = (byte[])state.SelfMaskSeed.Clone();
        Phase = state.Phase;
    }

    /// <summary>
    /// Everything this client needs to resume after a restart: its key pairs, self-mask seed, the neighbours' keys it
    /// accepted, the shares it holds and whom it masked with. These are the round's secrets: seal the state before it
    /// touches a disk, and destroy it with the round.
    /// </summary>
    public SecAggClientState ExportState() => new(
        ClientId, Phase, (byte[])_parameters.RoundId.Clone(),
        SecAggCrypto.ExportPrivateScalar(_encryptionKey), SecAggCrypto.ExportPublic(_encryptionKey),
        SecAggCrypto.ExportPrivateScalar(_maskingKey), SecAggCrypto.ExportPublic(_maskingKey),
        (byte[])_selfMaskSeed.Clone(),
        _peerEncryptionKeys.Keys.Order().Select(id => new SecAggPeerKeys(id, Point(_peerEncryptionKeys[id]), Point(_peerMaskingKeys[id]))).ToArray(),
        _heldShares.Keys.Order().Select(id => new SecAggHeldShare(id, (byte[])_heldShares[id].S.Clone(), (byte[])_heldShares[id].B.Clone())).ToArray(),
        [.. _maskedWith.Order()], (byte[]?)_viewDigest?.Clone(), _signedSurvivors is null ? null : (int[])_signedSurvivors.Clone());

    /// <summary>
    /// The client-side checks of the malicious variant on the parameters alone (the server chose them, so the client does
    /// not take them on trust): the threshold floor, and no server-chosen seed for a sparse graph.
    /// </summary>
    private static void RefuseUnsafeParameters(SecAggRoundParameters p, NeighbourGraph graph, int clientId)
    {
        if (!p.RequireSignatures) return;
        var floor = SecAggRoundParameters.MaliciousThresholdFloor(graph.Degree + 1);
        if (p.Threshold < floor)
            throw new SecAggAbortedException($"Client {clientId} aborts: threshold {p.Threshold} is below {floor}, the least that holds against an active server for {graph.Degree + 1} share holders (t > 2m/3).");
        if (p.NeighbourDegree > 0 && p.GraphSeed is { Length: > 0 })
            throw new SecAggAbortedException($"Client {clientId} aborts: the server chose the neighbour graph's seed; in this variant it is derived from the signed advertisements.");
    }

    private static byte[] Point(ECDiffieHellmanPublicKey key) => SecAggCrypto.Encode(key.ExportParameters().Q);

    /// <summary>A client resumed from <see cref="ExportState"/>, in the phase it had reached.</summary>
    /// <exception cref="ArgumentException">the state does not belong to this round, or is inconsistent.</exception>
    /// <exception cref="SecAggAbortedException">the parameters fail the malicious variant's checks (see the constructor).</exception>
    public static SecAggClient Restore(SecAggRoundParameters parameters, SecAggClientState state, ECDsa? signingKey = null, IReadOnlyDictionary<int, byte[]>? verificationKeys = null, byte[]? context = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        var graph = parameters.BuildGraph();
        if (parameters.RequireSignatures && (signingKey is null || verificationKeys is null))
            throw new ArgumentException("This round requires a signing key and the PKI's verification keys.");
        RefuseUnsafeParameters(parameters, graph, state.ClientId);
        if (state.ViewDigest is not null && state.ViewDigest.Length != 32) throw new ArgumentException("The state's advertised-set digest is not 32 bytes.");
        if (parameters.JointGraphSeed && state.Phase > SecAggPhase.ShareKeys && state.Phase != SecAggPhase.Done)
        {
            // The sparse graph of this round came from the advertisements this client accepted.
            if (state.ViewDigest is null) throw new ArgumentException("The state lacks the joint graph seed.");
            graph = NeighbourGraph.Harary(parameters.ClientIds, parameters.NeighbourDegree, state.ViewDigest);
        }
        if (state.RoundId is null || !CryptographicOperations.FixedTimeEquals(state.RoundId, parameters.RoundId)) throw new ArgumentException("The state belongs to another round.");
        if (!graph.Contains(state.ClientId)) throw new ArgumentException($"Client {state.ClientId} is not in this round.");
        if (!Enum.IsDefined(state.Phase)) throw new ArgumentException("The state's phase is unknown.");
        if (state.SelfMaskSeed is not { Length: SecAggCrypto.SecretLength }) throw new ArgumentException("The state's self-mask seed has the wrong length.");
        if (state.EncryptionPrivateKey is null || state.MaskingPrivateKey is null || state.EncryptionPublicKey is null || state.MaskingPublicKey is null)
            throw new ArgumentException("The state lacks a key.");
        var client = new SecAggClient(parameters, graph, state, signingKey, verificationKeys, context);
        try
        {
            foreach (var peer in state.Peers ?? [])
            {
                if (peer is null || peer.ClientId == state.ClientId || !graph.AreNeighbours(state.ClientId, peer.ClientId)) throw new ArgumentException("The state names a peer that is not a neighbour.");
                if (!SecAggCrypto.TryImportPublic(peer.EncryptionPublicKey, out var c) || !SecAggCrypto.TryImportPublic(peer.MaskingPublicKey, out var m))
                    throw new ArgumentException("The state holds an invalid peer key.");
                client._peerEncryptionKeys[peer.ClientId] = c!;
                client._peerMaskingKeys[peer.ClientId] = m!;
            }
            foreach (var share in state.HeldShares ?? [])
            {
                if (share is null || !ShamirSecretSharing.IsWellFormed(share.MaskingKeyShare, SecAggCrypto.SecretLength) || !ShamirSecretSharing.IsWellFormed(share.SelfMaskSeedShare, SecAggCrypto.SecretLength))
                    throw new ArgumentException("The state holds a malformed share.");
                client._heldShares[share.Owner] = ((byte[])share.MaskingKeyShare.Clone(), (byte[])share.SelfMaskSeedShare.Clone());
            }
            client._maskedWith = [.. state.MaskedWith ?? []];
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>Phase 0: advertise the two public keys, signed when the round requires it.</summary>
    public AdvertiseKeysMessage AdvertiseKeys()
    {
        Expect(SecAggPhase.AdvertiseKeys);
        var c = SecAggCrypto.ExportPublic(_encryptionKey);
        var s = SecAggCrypto.ExportPublic(_maskingKey);
        var signature = _signingKey is null ? [] : SecAggCrypto.Sign(_signingKey, SecAggCrypto.AdvertisementSignedBytes(_context, _parametersDigest, ClientId, c, s));
        Phase = SecAggPhase.ShareKeys;
        return new AdvertiseKeysMessage(ClientId, c, s, signature);
    }

    /// <summary>Phase 1: check the neighbours' keys, Shamir-share the masking key and the self-mask seed, encrypt one bundle per neighbour.</summary>
    /// <exception cref="SecAggAbortedException">fewer than t neighbours, a key for a non-neighbour, a repeated or invalid key, or a bad signature.</exception>
    public ShareKeysMessage ShareKeys(KeysBroadcast broadcast)
    {
        Expect(SecAggPhase.ShareKeys);
        ArgumentNullException.ThrowIfNull(broadcast);
        var advertised = new Dictionary<int, AdvertiseKeysMessage>();
        var distinctKeys = new HashSet<string>();
        var own = (C: SecAggCrypto.ExportPublic(_encryptionKey), S: SecAggCrypto.ExportPublic(_maskingKey));
        distinctKeys.Add(Convert.ToHexString(own.C));
        distinctKeys.Add(Convert.ToHexString(own.S));
        foreach (var m in broadcast.Keys ?? [])
        {
            if (m is null) continue;
            if (m.ClientId == ClientId)
            {
                // Our own advertisement, echoed back: it must be exactly ours (a substituted one would change the joint seed).
                if (!(m.EncryptionPublicKey ?? []).AsSpan().SequenceEqual(own.C) || !(m.MaskingPublicKey ?? []).AsSpan().SequenceEqual(own.S))
                    Abort("server sent keys in our name that are not ours");
                continue;
            }
            // With a joint seed the graph is not known yet: every advertisement of U1 comes, neighbours are picked below.
            if (!_parameters.JointGraphSeed && !_graph.AreNeighbours(ClientId, m.ClientId)) Abort($"server sent keys of non-neighbour {m.ClientId}");
            if (_parameters.JointGraphSeed && !_graph.Contains(m.ClientId)) Abort($"server sent keys of client {m.ClientId}, who is not in this round");
            if (!advertised.TryAdd(m.ClientId, m)) Abort($"server sent two key sets for client {m.ClientId}");
            if (!distinctKeys.Add(Convert.ToHexString(m.MaskingPublicKey ?? [])) || !distinctKeys.Add(Convert.ToHexString(m.EncryptionPublicKey ?? [])))
                Abort($"client {m.ClientId}'s keys repeat another's");
            // Before any key is used: a key the server substituted fails here and aborts, naming the peer.
            if (_parameters.RequireSignatures &&
                (!_verificationKeys!.TryGetValue(m.ClientId, out var vk) || m.EncryptionPublicKey is null || m.MaskingPublicKey is null ||
                 !SecAggCrypto.Verify(vk, SecAggCrypto.AdvertisementSignedBytes(_context, _parametersDigest, m.ClientId, m.EncryptionPublicKey, m.MaskingPublicKey), m.Signature)))
                Abort($"client {m.ClientId}'s advertised keys are not signed by its enrolled identity key");
            var validC = SecAggCrypto.TryImportPublic(m.EncryptionPublicKey, out var c);
            var validS = SecAggCrypto.TryImportPublic(m.MaskingPublicKey, out var s);
            c?.Dispose();
            s?.Dispose();
            if (!validC || !validS) Abort($"client {m.ClientId}'s keys are not valid P-256 points");
        }
        if (_parameters.RequireSignatures)
        {
            // U1 as this client saw it, own keys included: bound into the consistency signature and, for SecAgg+, the graph's seed.
            _viewDigest = SecAggCrypto.ViewDigest(_parametersDigest,
                advertised.Values.Select(m => (m.ClientId, m.EncryptionPublicKey, m.MaskingPublicKey)).Append((ClientId, own.C, own.S)));
            if (_parameters.JointGraphSeed)
            {
                _graph = NeighbourGraph.Harary(_parameters.ClientIds, _parameters.NeighbourDegree, _viewDigest);
                foreach (var id in advertised.Keys.ToArray())
                    if (!_graph.AreNeighbours(ClientId, id)) advertised.Remove(id);
            }
        }
        foreach (var m in advertised.Values)
        {
            SecAggCrypto.TryImportPublic(m.EncryptionPublicKey, out var c);
            SecAggCrypto.TryImportPublic(m.MaskingPublicKey, out var s);
            _peerEncryptionKeys[m.ClientId] = c!;
            _peerMaskingKeys[m.ClientId] = s!;
        }
        // U1 counts this client too (Bonawitz et al., Figure 4: shares go to every v in U1, the sender included):
        // it keeps its own share and reveals it in Unmasking, so t survivors suffice to unmask each other.
        if (advertised.Count + 1 < _parameters.Threshold) Abort($"only {advertised.Count + 1} clients of our neighbourhood advertised keys; threshold is {_parameters.Threshold}");

        var peers = advertised.Keys.Order().ToArray();
        var holders = peers.Append(ClientId).Order().ToArray();
        var scalar = SecAggCrypto.ExportPrivateScalar(_maskingKey);
        var sShares = ShamirSecretSharing.Split(scalar, _parameters.Threshold, holders);
        var bShares = ShamirSecretSharing.Split(_selfMaskSeed, _parameters.Threshold, holders);
        CryptographicOperations.ZeroMemory(scalar);
        var bundles = new EncryptedShare[peers.Length];
        for (int i = 0, k = 0; i < holders.Length; i++)
        {
            if (holders[i] == ClientId) { _heldShares[ClientId] = (sShares[i], bShares[i]); continue; }
            var key = SecAggCrypto.ShareKey(_encryptionKey, _peerEncryptionKeys[holders[i]], _parameters.RoundId, ClientId, holders[i]);
            bundles[k++] = new EncryptedShare(ClientId, holders[i], SecAggCrypto.EncryptBundle(key, _parameters.RoundId, ClientId, holders[i], sShares[i], bShares[i]));
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(sShares[i]);
            CryptographicOperations.ZeroMemory(bShares[i]);
        }
        Phase = SecAggPhase.MaskedInputCollection;
        return new ShareKeysMessage(ClientId, bundles, SecAggCrypto.Commit(_parameters.RoundId, ClientId, _selfMaskSeed));
    }

    /// <summary>Phase 2: decrypt the shares held for others (complaining about bad ones), then mask
    /// <paramref name="input"/> (entries in Z_(2^k)) with the self mask and one pairwise mask per neighbour that shared.</summary>
    /// <exception cref="ArgumentException">the input has the wrong length.</exception>
    /// <exception cref="SecAggAbortedException">fewer than t neighbours shared, or shares from strangers.</exception>
    public MaskedInputMessage MaskInput(ForwardedShares forwarded, ReadOnlySpan<uint> input)
    {
        Expect(SecAggPhase.MaskedInputCollection);
        ArgumentNullException.ThrowIfNull(forwarded);
        if (input.Length != _parameters.VectorLength) throw new ArgumentException($"Input has {input.Length} entries, the round expects {_parameters.VectorLength}.", nameof(input));
        var complaints = new List<ShareComplaint>();
        var senders = new HashSet<int>();
        foreach (var share in forwarded.Shares ?? [])
        {
            if (share is null) continue;
            if (share.To != ClientId) Abort($"server forwarded a share addressed to {share.To}");
            if (!_peerEncryptionKeys.ContainsKey(share.From)) Abort($"server forwarded a share from {share.From}, who did not advertise keys to us");
            if (!senders.Add(share.From)) Abort($"server forwarded two shares from {share.From}");
            var key = SecAggCrypto.ShareKey(_encryptionKey, _peerEncryptionKeys[share.From], _parameters.RoundId, share.From, ClientId);
            var problem = SecAggCrypto.TryDecryptBundle(key, _parameters.RoundId, share.From, ClientId, share.Ciphertext, out var s, out var b);
            if (problem is null)
            {
                CryptographicOperations.ZeroMemory(key);
                _heldShares[share.From] = (s, b);
            }
            // The key is the proof: it opens only this bundle (what the accused sent us), so revealing it costs us nothing.
            else complaints.Add(new ShareComplaint(share.From, problem, key));
        }
        if (senders.Count + 1 < _parameters.Threshold) Abort($"only {senders.Count + 1} clients of our neighbourhood shared keys; threshold is {_parameters.Threshold}");

        var mask = RingCodec.RingMask(_parameters.RingBits);
        var y = new uint[input.Length];
        for (var i = 0; i < y.Length; i++)
        {
            if (input[i] > mask) throw new ArgumentException($"Input entry {i} is outside Z_(2^{_parameters.RingBits}).", nameof(input));
            y[i] = input[i];
        }
        MaskExpander.Apply(_selfMaskSeed, y, subtract: false);
        foreach (var peer in senders)
        {
            // Every neighbour that shared is in U2, so the server will expect this pairwise mask,
            // whether or not its share to us was usable.
            var seed = SecAggCrypto.MaskSeed(_maskingKey, _peerMaskingKeys[peer], _parameters.RoundId, ClientId, peer);
            MaskExpander.Apply(seed, y, subtract: ClientId > peer);
            CryptographicOperations.ZeroMemory(seed);
        }
        for (var i = 0; i < y.Length; i++) y[i] &= mask;
        _maskedWith = senders;
        var packed = new byte[RingCodec.PackedLength(y.Length, _parameters.RingBits)];
        RingCodec.Pack(y, _parameters.RingBits, packed);
        Phase = _parameters.RequireSignatures ? SecAggPhase.ConsistencyCheck : SecAggPhase.Unmasking;
        return new MaskedInputMessage(ClientId, packed, complaints.ToArray());
    }

    /// <summary>
    /// Malicious variant, consistency check (Bonawitz et al. 2017, Figure 4, round 3): sign the survivor set U3 the server
    /// announces. This client signs one set per round and later reveals shares for that set only.
    /// </summary>
    /// <exception cref="SecAggAbortedException">the set is too small, names strangers or neighbours that did not share with us, leaves this
    /// client out, or overlaps the dropped set.</exception>
    public ConsistencySignature SignSurvivors(UnmaskRequest request)
    {
        Expect(SecAggPhase.ConsistencyCheck);
        ArgumentNullException.ThrowIfNull(request);
        var survivors = CheckRequest(request);
        if (!survivors.Contains(ClientId)) Abort("the survivor set leaves out this client, which sent its masked input");
        if (survivors.Count < _parameters.ConsistencyQuorum())
            Abort($"the survivor set has {survivors.Count} clients; at least {_parameters.ConsistencyQuorum()} must sign one set");
        _signedSurvivors = [.. survivors.Order()];
        var signature = SecAggCrypto.Sign(_signingKey!, SecAggCrypto.ConsistencySignedBytes(_context, _parametersDigest, _viewDigest!, ClientId, _signedSurvivors));
        Phase = SecAggPhase.Unmasking;
        return new ConsistencySignature(ClientId, signature);
    }

    /// <summary>
    /// Phase 3: reveal shares of survivors' self-mask seeds and of dropped clients' masking keys, never both for one client.
    /// In the malicious variant only for the survivor set this client signed, and only after at least
    /// <see cref="SecAggRoundParameters.ConsistencyQuorum"/> valid signatures of that same set (Figure 4, round 4).
    /// </summary>
    /// <exception cref="SecAggAbortedException">the request names a client as both, names strangers, or too few survivors; or (malicious variant)
    /// it names another survivor set than the signed one, carries a bad signature, or too few signatures.</exception>
    public UnmaskResponse Unmask(UnmaskRequest request)
    {
        Expect(SecAggPhase.Unmasking);
        ArgumentNullException.ThrowIfNull(request);
        var survivors = CheckRequest(request);
        var dropped = new HashSet<int>(request.Dropped ?? []);
        if (_parameters.RequireSignatures)
        {
            if (_signedSurvivors is null || !survivors.SetEquals(_signedSurvivors))
                Abort("the server asks to unmask another survivor set than the one this client signed");
            var signers = new HashSet<int>();
            foreach (var sig in request.Signatures ?? [])
            {
                if (sig is null) Abort("the server forwarded an empty consistency signature");
                if (!survivors.Contains(sig.ClientId)) Abort($"the server forwarded a consistency signature of client {sig.ClientId}, who is not a survivor");
                if (!signers.Add(sig.ClientId)) Abort($"the server forwarded two consistency signatures of client {sig.ClientId}");
                if (!_verificationKeys!.TryGetValue(sig.ClientId, out var vk) || !SecAggCrypto.Verify(vk, SecAggCrypto.ConsistencySignedBytes(_context, _parametersDigest, _viewDigest!, sig.ClientId, _signedSurvivors), sig.Signature))
                    Abort($"client {sig.ClientId}'s signature is not over the survivor set this client signed: the server showed clients different sets");
            }
            if (signers.Count < _parameters.ConsistencyQuorum())
                Abort($"only {signers.Count} clients signed the survivor set; {_parameters.ConsistencyQuorum()} must before any share is revealed");
        }

        var shares = new List<RevealedShare>();
        foreach (var u in survivors.Order())
            if (_heldShares.TryGetValue(u, out var held)) shares.Add(new RevealedShare(u, SharedSecretKind.SelfMaskSeed, held.B));
        // Never our own masking key: we are answering, so we are no dropout, whatever the request says.
        foreach (var u in dropped.Order())
            if (u != ClientId && _heldShares.TryGetValue(u, out var held)) shares.Add(new RevealedShare(u, SharedSecretKind.MaskingKey, held.S));
        Phase = SecAggPhase.Done;
        return new UnmaskResponse(ClientId, shares.ToArray());
    }

    private HashSet<int> CheckRequest(UnmaskRequest request)
    {
        var survivors = new HashSet<int>(request.Survivors ?? []);
        var dropped = new HashSet<int>(request.Dropped ?? []);
        if (survivors.Overlaps(dropped)) Abort("the server asked for both secrets of one client");
        foreach (var u in survivors.Concat(dropped))
        {
            if (!_graph.Contains(u)) Abort($"the server named client {u}, who is not in this round");
            if (u != ClientId && _graph.AreNeighbours(ClientId, u) && !_maskedWith.Contains(u))
                Abort($"the server named client {u}, who did not share keys with us");
        }
        var survivingNeighbourhood = survivors.Count(u => u == ClientId || _graph.AreNeighbours(ClientId, u));
        if (survivingNeighbourhood < _parameters.Threshold)
            Abort($"only {survivingNeighbourhood} clients of our neighbourhood survived; threshold is {_parameters.Threshold}");
        return survivors;
    }

    /// <summary>Destroys the key pairs and held secrets.</summary>
    public void Dispose()
    {
        _encryptionKey.Dispose();
        _maskingKey.Dispose();
        CryptographicOperations.ZeroMemory(_selfMaskSeed);
        foreach (var (s, b) in _heldShares.Values) { CryptographicOperations.ZeroMemory(s); CryptographicOperations.ZeroMemory(b); }
        foreach (var k in _peerEncryptionKeys.Values) k.Dispose();
        foreach (var k in _peerMaskingKeys.Values) k.Dispose();
    }

    private void Expect(SecAggPhase phase)
    {
        if (Phase != phase) throw new InvalidOperationException($"Client {ClientId} is in phase {Phase}, not {phase}.");
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Abort(string reason)
    {
        Phase = SecAggPhase.Done;
        throw new SecAggAbortedException($"Client {ClientId} aborts: {reason}.");
    }
}
