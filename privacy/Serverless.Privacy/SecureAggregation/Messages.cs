namespace Serverless.Privacy.SecureAggregation;

// The protocol's messages, as plain records with byte[] / int[] fields so that a durable
// orchestration can carry them as JSON external events. Every field is validated on receipt.

/// <summary>Public parameters of one secure-aggregation round, known to server and clients.</summary>
/// <param name="RoundId">Unique per round (16-64 bytes); binds keys, shares and signatures to this round.</param>
/// <param name="ClientIds">The selected clients U0 (positive, distinct: they are Shamir x-coordinates).</param>
/// <param name="Threshold">Shares needed to reconstruct a secret (t); within each neighbourhood for SecAgg+.</param>
/// <param name="VectorLength">Entries in each input vector.</param>
/// <param name="RingBits">k: inputs and sums live in Z_(2^k).</param>
/// <param name="NeighbourDegree">0 for SecAgg (complete graph); an even k for SecAgg+'s Harary graph.</param>
/// <param name="GraphSeed">Public seed of the SecAgg+ permutation (empty for SecAgg).</param>
/// <param name="RequireSignatures">
/// Malicious-server variant (Bonawitz et al. 2017, Figure 4's active-adversary steps): advertised keys are
/// ECDSA-signed with each client's long-term key and verified against a PKI, the survivor set is signed in a
/// consistency check before any share is revealed, the threshold must clear <see cref="MaliciousThresholdFloor()"/>, and a
/// sparse graph's seed is derived from the signed advertisements instead of <paramref name="GraphSeed"/> (which must be empty).
/// </param>
public sealed record SecAggRoundParameters(
    byte[] RoundId,
    int[] ClientIds,
    int Threshold,
    int VectorLength,
    int RingBits,
    int NeighbourDegree,
    byte[] GraphSeed,
    bool RequireSignatures)
{
    /// <summary>Checks the parameters and builds the neighbour graph they describe.</summary>
    /// <exception cref="ArgumentException">a parameter is out of range.</exception>
    public NeighbourGraph BuildGraph()
    {
        if (RoundId is null || RoundId.Length is < 16 or > 64) throw new ArgumentException("RoundId must be 16..64 bytes.");
        if (ClientIds is null || ClientIds.Length < 2) throw new ArgumentException("At least two clients.");
        if (VectorLength < 1) throw new ArgumentException("VectorLength must be positive.");
        if (RingBits is < 2 or > 32) throw new ArgumentException("RingBits must be 2..32.");
        var graph = NeighbourDegree == 0
            ? NeighbourGraph.Complete(ClientIds)
            : NeighbourGraph.Harary(ClientIds, NeighbourDegree, GraphSeed ?? []);
        // Each client holds a share of its own secrets too (Figure 4: shares go to all of U1), so a secret has Degree + 1
        // holders; t = Degree + 1 is valid and tolerates no dropout (the malicious floor of a three-client round).
        if (Threshold < 1 || Threshold > graph.Degree + 1)
            throw new ArgumentException($"Threshold {Threshold} must be in [1, {graph.Degree + 1}] (the neighbourhood and the client itself).");
        return graph;
    }

    /// <summary>True when the sparse graph's seed is derived jointly from the signed advertisements (malicious variant, SecAgg+).</summary>
    public bool JointGraphSeed => RequireSignatures && NeighbourDegree > 0 && NeighbourDegree < (ClientIds?.Length ?? 0) - 1;

    /// <summary>
    /// The least threshold that holds against an active server colluding with fewer than a third of a secret's share
    /// holders: t &gt; 2m/3, m = the holders of one client's shares (its neighbours and itself; m = n for the complete graph).
    /// Bonawitz et al. 2017, §6 (the active-adversary analysis: t &gt; 2n/3 with n_C &lt; n/3 corrupt clients); for SecAgg+ the
    /// same bound over a neighbourhood (Bell et al. 2020 state their guarantees per neighbourhood; here m = k + 1). Why: an
    /// honest holder reveals at most one of b_u and s_u^SK, so to learn both the server needs two disjoint honest sets of
    /// t - c holders each, 2(t - c) &lt;= m - c; t &gt; (m + c)/2 with c &lt; m/3 forbids it.
    /// </summary>
    public static int MaliciousThresholdFloor(int holders) => 2 * holders / 3 + 1;

    /// <summary>The floor of these parameters (see <see cref="MaliciousThresholdFloor(int)"/>).</summary>
    /// <exception cref="ArgumentException">invalid parameters.</exception>
    public int MaliciousThresholdFloor() => MaliciousThresholdFloor(BuildGraph().Degree + 1);

    /// <summary>
    /// Signatures on one survivor set a client needs before it reveals any share: more than 2n/3 of the selected
    /// clients U0 (and at least t). Two different sets cannot both collect that many while fewer than n/3 clients
    /// collude, because each honest client signs one set only (Bonawitz et al. 2017, Figure 4, ConsistencyCheck; the global
    /// count also covers a sparse graph, whose neighbourhoods alone could be shown different sets).
    /// </summary>
    public int ConsistencyQuorum() => Math.Max(Threshold, 2 * (ClientIds?.Length ?? 0) / 3 + 1);
}

/// <summary>Phase 0, client to server: the two public keys (c for share encryption, s for masking).</summary>
public sealed record AdvertiseKeysMessage(int ClientId, byte[] EncryptionPublicKey, byte[] MaskingPublicKey, byte[] Signature);

/// <summary>Phase 0, server to client: the advertised keys of the client's neighbours that survived phase 0.</summary>
public sealed record KeysBroadcast(AdvertiseKeysMessage[] Keys);

/// <summary>One share bundle for one recipient, AES-GCM encrypted: nonce || ciphertext || tag.</summary>
public sealed record EncryptedShare(int From, int To, byte[] Ciphertext);

/// <summary>Phase 1, client to server: encrypted shares for every neighbour, and a commitment to the self-mask seed.</summary>
public sealed record ShareKeysMessage(int ClientId, EncryptedShare[] Shares, byte[] SelfMaskCommitment);

/// <summary>Phase 1, server to client: shares addressed to this client from the clients that survived phase 1.</summary>
public sealed record ForwardedShares(EncryptedShare[] Shares);

/// <summary>
/// A complaint: the named sender's share bundle did not decrypt or did not hold valid shares. Its proof is
/// <paramref name="ShareKey"/>, the AES key of that one bundle (directional: it opens what the accused sent the
/// complainer, never what the complainer sent back). The server opens the stored bundle with it: a bundle that
/// opens to bad contents proves the complaint, one that opens to valid shares disproves it, and one that does
/// not open proves nothing, so the survivor set stays as it is (<see cref="SecAggServer.CloseMaskedInput"/>).
/// </summary>
public sealed record ShareComplaint(int Accused, string Reason, byte[]? ShareKey = null)
{
    /// <summary>Length of <see cref="ShareKey"/>: an AES-256 key.</summary>
    public const int ShareKeyLength = 32;
}

/// <summary>Phase 2, client to server: the masked input packed at k bits per entry, plus complaints about bad shares.</summary>
public sealed record MaskedInputMessage(int ClientId, byte[] MaskedInput, ShareComplaint[] Complaints);

/// <summary>
/// Phase 3, server to clients: whose self-mask seed (survivors, U3) and whose masking key (dropped) to reveal. In the
/// malicious variant it is sent twice: first without signatures (the consistency check: sign U3), then with the
/// signatures of the clients that signed it (Bonawitz et al. 2017, Figure 4, rounds 3 and 4).
/// </summary>
public sealed record UnmaskRequest(int[] Survivors, int[] Dropped, ConsistencySignature[]? Signatures = null);

/// <summary>Consistency check, client to server (and forwarded to every signer): the client's ECDSA signature over the survivor set.</summary>
public sealed record ConsistencySignature(int ClientId, byte[] Signature);

/// <summary>Which secret a revealed share belongs to.</summary>
public enum SharedSecretKind
{
    /// <summary>Share of b_u, the self-mask seed of a survivor.</summary>
    SelfMaskSeed = 1,

    /// <summary>Share of s_u^SK, the masking private key of a dropped client.</summary>
    MaskingKey = 2,
}

/// <summary>One revealed share of <paramref name="Owner"/>'s secret.</summary>
public sealed record RevealedShare(int Owner, SharedSecretKind Kind, byte[] Share);

/// <summary>Phase 3, client to server.</summary>
public sealed record UnmaskResponse(int ClientId, RevealedShare[] Shares);

/// <summary>Why a client's contribution was left out.</summary>
public sealed record SecAggExclusion(int ClientId, SecAggPhase Phase, string Reason);

/// <summary>The protocol's phases.</summary>
public enum SecAggPhase
{
    /// <summary>Round 0.</summary>
    AdvertiseKeys = 0,

    /// <summary>Round 1.</summary>
    ShareKeys = 1,

    /// <summary>Round 2.</summary>
    MaskedInputCollection = 2,

    /// <summary>Round 3 of the malicious variant: clients sign the survivor set (Bonawitz et al. 2017, Figure 4, ConsistencyCheck).</summary>
    ConsistencyCheck = 3,

    /// <summary>Round 3 (round 4 of the paper with the consistency check).</summary>
    Unmasking = 4,

    /// <summary>Finished.</summary>
    Done = 5,
}

/// <summary>The outcome: the sum over <see cref="Included"/> in Z_(2^k), and who was left out and why.</summary>
public sealed record SecAggResult(uint[] Sum, int[] Included, SecAggExclusion[] Exclusions);

/// <summary>The round cannot go on safely (too few survivors, or a secret could not be reconstructed).</summary>
public sealed class SecAggAbortedException(string message) : Exception(message);

/// <summary>A neighbour's accepted public keys (uncompressed P-256 points), part of <see cref="SecAggClientState"/>.</summary>
public sealed record SecAggPeerKeys(int ClientId, byte[] EncryptionPublicKey, byte[] MaskingPublicKey);

/// <summary>The shares a client holds of one owner's secrets, part of <see cref="SecAggClientState"/>.</summary>
public sealed record SecAggHeldShare(int Owner, byte[] MaskingKeyShare, byte[] SelfMaskSeedShare);

/// <summary>
/// A client's secrets and progress in one round (<see cref="SecAggClient.ExportState"/>): key pairs (private scalar and
/// public point), self-mask seed, accepted peer keys, held shares, the neighbours it masked with and, in the malicious
/// variant, the digest of the advertisements it accepted (the joint graph seed) and the survivor set it signed (it never
/// signs or unmasks another). Secret: keep it sealed.
/// </summary>
public sealed record SecAggClientState(int ClientId, SecAggPhase Phase, byte[] RoundId,
    byte[] EncryptionPrivateKey, byte[] EncryptionPublicKey, byte[] MaskingPrivateKey, byte[] MaskingPublicKey, byte[] SelfMaskSeed,
    SecAggPeerKeys[] Peers, SecAggHeldShare[] HeldShares, int[] MaskedWith, byte[]? ViewDigest = null, int[]? SignedSurvivors = null);
