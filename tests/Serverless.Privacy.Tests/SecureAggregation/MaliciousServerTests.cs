using System.Security.Cryptography;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

/// <summary>
/// The malicious-server variant (Bonawitz et al. 2017, Figure 4 with signatures and the consistency check; a joint seed for
/// Bell et al.'s sparse graph): honest rounds still sum exactly, and each way an active server can try to learn one client's
/// input makes the honest clients refuse before they reveal a share.
/// </summary>
public sealed class MaliciousServerTests
{
    [Theory]
    [InlineData(SecAggPhase.AdvertiseKeys)]
    [InlineData(SecAggPhase.ShareKeys)]
    [InlineData(SecAggPhase.MaskedInputCollection)]
    [InlineData(SecAggPhase.ConsistencyCheck)]
    [InlineData(SecAggPhase.Unmasking)]
    public void An_honest_signed_round_sums_exactly_with_dropouts_at_each_phase(SecAggPhase phase)
    {
        var h = SecAggHarness.CreateSigned(n: 12, length: 33, seed: (int)phase);
        Assert.Equal(9, h.Parameters.Threshold);   // floor(2 * 12 / 3) + 1
        h.Drop(phase, [3, 11]);
        var result = h.Run();
        var included = phase <= SecAggPhase.MaskedInputCollection ? Enumerable.Range(1, 12).Except([3, 11]).ToArray() : Enumerable.Range(1, 12).ToArray();
        Assert.Equal(included, result.Included);
        Assert.Equal(h.PlainSum(included), result.Sum);
    }

    [Fact]
    public void An_honest_signed_SecAggPlus_round_uses_the_joint_graph_and_sums_exactly()
    {
        var h = SecAggHarness.CreateSigned(n: 30, length: 20, degree: 14, seed: 4);
        Assert.True(h.Parameters.JointGraphSeed);
        h.Drop(SecAggPhase.MaskedInputCollection, [2, 9]);
        var result = h.Run();
        var included = Enumerable.Range(1, 30).Except([2, 9]).ToArray();
        Assert.Equal(included, result.Included);
        Assert.Equal(h.PlainSum(included), result.Sum);
        // The graph is the one every client can recompute from the signed advertisements, not one drawn from a seed the server chose.
        Assert.False(h.Server!.Graph.IsComplete);
        var fromEmptySeed = NeighbourGraph.Harary(h.Parameters.ClientIds, 14, []);
        Assert.Contains(h.Parameters.ClientIds, id => !h.Server.Graph.NeighboursOf(id).SequenceEqual(fromEmptySeed.NeighboursOf(id)));
    }

    [Fact]
    public void A_key_the_server_substitutes_makes_the_receiving_client_abort_naming_the_peer()
    {
        using var round = new ManualRound(SecAggHarness.CreateSigned(n: 6, length: 4));
        var keys = round.AdvertiseAndClose();
        // The server swaps client 3's masking key for one it holds the private half of, in client 1's view only.
        using var own = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        var q = own.ExportParameters(false).Q;
        var forged = keys[1].Keys.Select(m => m.ClientId == 3 ? m with { MaskingPublicKey = SecAggCrypto.Encode(q) } : m).ToArray();
        var ex = Assert.Throws<SecAggAbortedException>(() => round.Clients[1].ShareKeys(new KeysBroadcast(forged)));
        Assert.Contains("client 3", ex.Message);
        Assert.Contains("not signed", ex.Message);
        Assert.Equal(SecAggPhase.Done, round.Clients[1].Phase);
        // An unsigned advertisement is refused the same way (never silently dropped).
        var unsigned = keys[2].Keys.Select(m => m.ClientId == 5 ? m with { Signature = [] } : m).ToArray();
        Assert.Contains("client 5", Assert.Throws<SecAggAbortedException>(() => round.Clients[2].ShareKeys(new KeysBroadcast(unsigned))).Message);
    }

    [Fact]
    public void The_issues_attack_telling_halves_different_survivor_sets_gets_no_share_from_any_honest_client()
    {
        // Issue 20: n = 8, one colluding client (8). The server tells clients 1-4 that client 1 survived and clients 5-7 that it
        // dropped, hoping for b_1 from the first half and s_1^SK from the second. With the consistency check each half sees too
        // few signatures on its set, and no honest client reveals anything.
        using var round = new ManualRound(SecAggHarness.CreateSigned(n: 8, length: 4));
        var request = round.RunToConsistencyCheck();
        int[] all = [1, 2, 3, 4, 5, 6, 7, 8];
        int[] withoutOne = [2, 3, 4, 5, 6, 7, 8];
        var sigA = new Dictionary<int, ConsistencySignature>();
        var sigB = new Dictionary<int, ConsistencySignature>();
        foreach (var id in new[] { 1, 2, 3, 4, 8 }) sigA[id] = round.Clients[id].SignSurvivors(new UnmaskRequest(all, []));
        foreach (var id in new[] { 5, 6, 7 }) sigB[id] = round.Clients[id].SignSurvivors(new UnmaskRequest(withoutOne, [1]));
        // The colluder signs B too (its key is the server's to use); it holds a second client object for that, as a colluder would.
        sigB[8] = round.SignAsColluder(8, withoutOne);
        var revealed = new List<RevealedShare>();
        // Forwarding every signature to the first half: some are over the other set, so they abort.
        foreach (var id in new[] { 1, 2, 3, 4 })
            revealed.AddRange(round.TryUnmask(id, new UnmaskRequest(all, [], [.. sigA.Values, .. sigB.Values])));
        foreach (var id in new[] { 5, 6, 7 })
            revealed.AddRange(round.TryUnmask(id, new UnmaskRequest(withoutOne, [1], [.. sigB.Values])));
        // Only the matching signatures to the second half: 4 on its set, below the quorum of 6.
        Assert.Equal(6, round.Parameters.ConsistencyQuorum());
        Assert.Empty(revealed);
        Assert.All(new[] { 1, 2, 3, 4, 5, 6, 7 }, id => Assert.Equal(SecAggPhase.Done, round.Clients[id].Phase));
        Assert.NotNull(request);
    }

    [Fact]
    public void Forwarding_only_matching_signatures_to_each_half_is_still_below_the_quorum()
    {
        using var round = new ManualRound(SecAggHarness.CreateSigned(n: 8, length: 4));
        round.RunToConsistencyCheck();
        int[] all = [1, 2, 3, 4, 5, 6, 7, 8];
        int[] withoutOne = [2, 3, 4, 5, 6, 7, 8];
        var sigA = new[] { 1, 2, 3, 4 }.Select(id => round.Clients[id].SignSurvivors(new UnmaskRequest(all, []))).Append(round.SignAsColluder(8, all)).ToArray();
        var sigB = new[] { 5, 6, 7 }.Select(id => round.Clients[id].SignSurvivors(new UnmaskRequest(withoutOne, [1]))).Append(round.SignAsColluder(8, withoutOne)).ToArray();
        foreach (var id in new[] { 1, 2, 3, 4 })
            Assert.Contains("only 5 clients signed", Assert.Throws<SecAggAbortedException>(() => round.Clients[id].Unmask(new UnmaskRequest(all, [], sigA))).Message);
        foreach (var id in new[] { 5, 6, 7 })
            Assert.Contains("only 4 clients signed", Assert.Throws<SecAggAbortedException>(() => round.Clients[id].Unmask(new UnmaskRequest(withoutOne, [1], sigB))).Message);
    }

    [Fact]
    public void A_signature_over_another_set_aborts_the_client_that_checks_it()
    {
        using var round = new ManualRound(SecAggHarness.CreateSigned(n: 8, length: 4));
        round.RunToConsistencyCheck();
        int[] all = [1, 2, 3, 4, 5, 6, 7, 8];
        var sigs = all.Where(id => id != 2).Select(id => round.Clients[id].SignSurvivors(new UnmaskRequest(all, []))).ToList();
        sigs.Add(round.SignAsColluder(2, [1, 2, 3, 4, 5, 6, 7]));   // client 2's key over a different set
        var ex = Assert.Throws<SecAggAbortedException>(() => round.Clients[1].Unmask(new UnmaskRequest(all, [], [.. sigs])));
        Assert.Contains("different sets", ex.Message);
    }

    [Fact]
    public void A_request_for_both_secrets_of_one_peer_or_for_an_unsigned_set_is_refused()
    {
        using var round = new ManualRound(SecAggHarness.CreateSigned(n: 8, length: 4));
        var request = round.RunToConsistencyCheck();
        // Both secrets of client 2 in one request: refused at the consistency check.
        Assert.Contains("both secrets", Assert.Throws<SecAggAbortedException>(() => round.Clients[1].SignSurvivors(new UnmaskRequest([1, 2, 3, 4, 5, 6, 7, 8], [2]))).Message);
        // After signing U3, a request that moves client 2 to the dropped set (its masking key) is refused.
        var sigs = new[] { 2, 3, 4, 5, 6, 7, 8 }.Select(id => round.Clients[id].SignSurvivors(request)).ToArray();
        Assert.Contains("another survivor set", Assert.Throws<SecAggAbortedException>(() => round.Clients[3].Unmask(new UnmaskRequest([1, 3, 4, 5, 6, 7, 8], [2], sigs))).Message);
        // The honest request still works for the others.
        var response = round.Clients[4].Unmask(request with { Signatures = sigs });
        Assert.All(response.Shares, s => Assert.Equal(SharedSecretKind.SelfMaskSeed, s.Kind));
    }

    [Theory]
    [InlineData(8, 0, 5)]     // floor(16/3) + 1 = 6
    [InlineData(8, 0, 4)]     // the issue's t = 4
    [InlineData(30, 14, 10)]  // SecAgg+, 15 holders: floor(30/3) + 1 = 11
    public void A_threshold_below_the_floor_is_refused_by_the_client(int n, int degree, int threshold)
    {
        var h = SecAggHarness.CreateSigned(n, 4, threshold: threshold, degree: degree);
        var ex = Assert.Throws<SecAggAbortedException>(() => new SecAggClient(h.Parameters, 1, h.SigningKeys![0], h.Pki, h.Context));
        Assert.Contains("below", ex.Message);
        // One above passes.
        using var ok = new SecAggClient(h.Parameters with { Threshold = h.Parameters.MaliciousThresholdFloor() }, 1, h.SigningKeys![0], h.Pki, h.Context);
    }

    [Fact]
    public void A_server_chosen_graph_seed_is_refused()
    {
        var h = SecAggHarness.CreateSigned(n: 30, length: 4, degree: 14);
        var chosen = h.Parameters with { GraphSeed = [1, 2, 3] };
        Assert.Contains("chose the neighbour graph", Assert.Throws<SecAggAbortedException>(() => new SecAggClient(chosen, 1, h.SigningKeys![0], h.Pki, h.Context)).Message);
        Assert.Throws<ArgumentException>(() => new SecAggServer(chosen, h.Pki));
    }

    [Fact]
    public void A_server_that_shows_clients_a_graph_of_its_own_choosing_gets_no_share()
    {
        // The server sends each client only the keys of its neighbours in a graph from a seed it picked. Each client derives the
        // seed from what it was shown, so views differ: clients abort, or their consistency signatures never match.
        var h = SecAggHarness.CreateSigned(n: 30, length: 4, degree: 14, seed: 6);
        using var round = new ManualRound(h);
        var ads = round.Clients.ToDictionary(kv => kv.Key, kv => kv.Value.AdvertiseKeys());
        var chosen = NeighbourGraph.Harary(h.Parameters.ClientIds, 14, [7, 7, 7]);
        var shares = new Dictionary<int, ShareKeysMessage>();
        foreach (var (id, c) in round.Clients)
            if (round.Try(id, () => c.ShareKeys(new KeysBroadcast(chosen.NeighboursOf(id).Select(v => ads[v]).ToArray()))) is { } m) shares[id] = m;
        var masked = new Dictionary<int, MaskedInputMessage>();
        foreach (var id in shares.Keys)
        {
            var inbox = shares.Values.SelectMany(m => m.Shares).Where(s => s.To == id).ToArray();
            if (round.Try(id, () => round.Clients[id].MaskInput(new ForwardedShares(inbox), h.Inputs[id])) is { } m) masked[id] = m;
        }
        var survivors = masked.Keys.Order().ToArray();
        var sigs = new List<ConsistencySignature>();
        foreach (var id in survivors)
            if (round.Try(id, () => round.Clients[id].SignSurvivors(new UnmaskRequest(survivors, []))) is { } s) sigs.Add(s);
        var revealed = survivors.SelectMany(id => round.TryUnmask(id, new UnmaskRequest(survivors, [], [.. sigs]))).ToList();
        Assert.Empty(revealed);
        var digests = round.Clients.Values.Select(c => c.ExportState().ViewDigest).Where(d => d is not null).Select(d => Convert.ToHexString(d!)).Distinct().Count();
        Assert.True(digests > 1, "each client derived the graph from the advertisements it was shown");
    }

    [Fact]
    public void A_restored_client_keeps_the_signed_set_and_the_joint_graph()
    {
        var h = SecAggHarness.CreateSigned(n: 12, length: 4, degree: 6);
        using var round = new ManualRound(h);
        var request = round.RunToConsistencyCheck();
        var sigs = round.Clients.Select(kv => kv.Value.SignSurvivors(request)).ToArray();
        var state = round.Clients[5].ExportState();
        Assert.Equal(request.Survivors.Order(), state.SignedSurvivors);
        Assert.NotNull(state.ViewDigest);
        using var restored = SecAggClient.Restore(h.Parameters, state, h.SigningKeys![4], h.Pki, h.Context);
        Assert.Contains("another survivor set",
            Assert.Throws<SecAggAbortedException>(() => restored.Unmask(new UnmaskRequest(request.Survivors.Where(i => i != 6).ToArray(), [6], sigs))).Message);
        using var again = SecAggClient.Restore(h.Parameters, state, h.SigningKeys![4], h.Pki, h.Context);
        Assert.NotEmpty(again.Unmask(request with { Signatures = sigs }).Shares);
    }

    /// <summary>
    /// Property: over many seeds, random sizes, graphs, dropouts at every phase and one of several server attacks, an honest round
    /// with enough signers sums exactly, and under an attack no honest client reveals both secrets of any peer, nor anything
    /// when the server split the survivor set.
    /// </summary>
    [Fact]
    public void Over_many_seeds_honest_rounds_sum_exactly_and_attacks_reveal_nothing_they_should_not()
    {
        var failures = new List<string>();
        for (var seed = 0; seed < 40; seed++)
        {
            var rng = new Random(seed);
            var n = rng.Next(6, 16);
            var degree = n >= 12 && rng.Next(2) == 0 ? 8 : 0;
            var h = SecAggHarness.CreateSigned(n, length: 8, degree: degree, seed: seed);
            var attack = rng.Next(3);   // 0 honest, 1 split U3, 2 move a survivor to the dropped set after signing
            var drops = new Dictionary<int, SecAggPhase>();
            foreach (var id in h.Parameters.ClientIds)
                if (rng.NextDouble() < 0.12) drops[id] = (SecAggPhase)rng.Next(0, 5);
            try
            {
                var outcome = RunProperty(h, drops, attack, rng);
                if (outcome is not null) failures.Add($"seed {seed} (n {n}, degree {degree}, attack {attack}): {outcome}");
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                failures.Add($"seed {seed}: threw {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static string? RunProperty(SecAggHarness h, Dictionary<int, SecAggPhase> drops, int attack, Random rng)
    {
        bool Alive(int id, SecAggPhase phase) => !drops.TryGetValue(id, out var p) || p > phase;
        var p = h.Parameters;
        var server = new SecAggServer(p, h.Pki, h.Context);
        using var round = new ManualRound(h);
        try
        {
            foreach (var (id, c) in round.Clients) if (Alive(id, SecAggPhase.AdvertiseKeys)) server.ReceiveAdvertiseKeys(c.AdvertiseKeys());
            foreach (var (id, k) in server.CloseAdvertiseKeys())
                if (Alive(id, SecAggPhase.ShareKeys) && round.Try(id, () => round.Clients[id].ShareKeys(k)) is { } m) server.ReceiveShareKeys(m);
            foreach (var (id, f) in server.CloseShareKeys())
                if (Alive(id, SecAggPhase.MaskedInputCollection) && round.Try(id, () => round.Clients[id].MaskInput(f, h.Inputs[id])) is { } m) server.ReceiveMaskedInput(m);
            var request = server.CloseMaskedInput();
            var signers = request.Survivors.Where(id => Alive(id, SecAggPhase.ConsistencyCheck)).ToArray();
            if (attack == 1 && request.Survivors.Length >= 2)
            {
                // Half the signers hear that the first survivor dropped.
                var victim = request.Survivors[0];
                var other = new UnmaskRequest(request.Survivors.Where(i => i != victim).ToArray(), [.. request.Dropped, victim]);
                var sigs = new List<ConsistencySignature>();
                var views = new Dictionary<int, UnmaskRequest>();
                foreach (var id in signers)
                {
                    var view = id != victim && rng.Next(2) == 0 ? other : request;
                    views[id] = view;
                    if (round.Clients[id].Phase == SecAggPhase.ConsistencyCheck && round.Try(id, () => round.Clients[id].SignSurvivors(view)) is { } s) sigs.Add(s);
                }
                var bShares = 0;
                var sShares = 0;
                foreach (var id in views.Keys)
                    foreach (var share in round.TryUnmask(id, views[id] with { Signatures = [.. sigs] }))
                    {
                        if (share.Owner == victim && share.Kind == SharedSecretKind.SelfMaskSeed) bShares++;
                        if (share.Owner == victim && share.Kind == SharedSecretKind.MaskingKey) sShares++;
                    }
                var splitHappened = views.Values.Distinct().Count() > 1;
                if (splitHappened && bShares + sShares > 0) return $"split survivor set, yet {bShares} b and {sShares} s shares of client {victim} were revealed";
                if (bShares > 0 && sShares > 0) return "both secrets of one client were revealed";
                return null;
            }
            foreach (var id in signers)
                if (round.Clients[id].Phase == SecAggPhase.ConsistencyCheck && round.Try(id, () => round.Clients[id].SignSurvivors(request)) is { } s)
                    server.ReceiveConsistencySignature(s);
            request = server.CloseConsistencyCheck();
            if (attack == 2)
            {
                var victim = request.Survivors[^1];
                var moved = request with { Survivors = request.Survivors.Where(i => i != victim).ToArray(), Dropped = [.. request.Dropped, victim] };
                foreach (var id in request.Survivors)
                    if (round.TryUnmask(id, moved).Any()) return $"client {id} revealed shares for a survivor set it never signed";
                return null;
            }
            foreach (var id in request.Survivors)
                if (Alive(id, SecAggPhase.Unmasking) && round.Clients[id].Phase == SecAggPhase.Unmasking && round.Try(id, () => round.Clients[id].Unmask(request)) is { } r) server.ReceiveUnmaskResponse(r);
            var result = server.Finish();
            var expected = h.PlainSum(result.Included);
            if (!expected.SequenceEqual(result.Sum)) return "sum differs from the plain sum of the included clients";
            var reliable = p.ClientIds.Where(id => !drops.ContainsKey(id)).ToArray();
            // A client may refuse to go on when too few of its own neighbourhood are left (SecAgg+); otherwise every reliable client is in.
            if (round.Aborted.Count == 0 && reliable.Except(result.Included).Any()) return "a reliable client was left out";
            if (p.NeighbourDegree == 0 && round.Aborted.Count > 0) return $"honest clients aborted: {string.Join("; ", round.Aborted)}";
            return null;
        }
        catch (SecAggAbortedException e)
        {
            // The server gave up: only acceptable when too few were left for the floor or the quorum.
            var reliable = p.ClientIds.Count(id => !drops.ContainsKey(id));
            return reliable >= p.ConsistencyQuorum() && attack == 0 && p.NeighbourDegree == 0 ? $"aborted with {reliable} reliable clients (quorum {p.ConsistencyQuorum()}): {e.Message}" : null;
        }
    }

    /// <summary>Clients of one signed round driven by hand, as a malicious server would.</summary>
    private sealed class ManualRound : IDisposable
    {
        private readonly SecAggHarness _h;

        public ManualRound(SecAggHarness h)
        {
            _h = h;
            Clients = h.Parameters.ClientIds.ToDictionary(i => i, i => new SecAggClient(h.Parameters, i, h.SigningKeys![i - 1], h.Pki, h.Context));
        }

        public Dictionary<int, SecAggClient> Clients { get; }

        public List<string> Aborted { get; } = [];

        public SecAggRoundParameters Parameters => _h.Parameters;

        public SecAggServer? Server { get; private set; }

        public IReadOnlyDictionary<int, KeysBroadcast> AdvertiseAndClose()
        {
            Server = new SecAggServer(_h.Parameters, _h.Pki, _h.Context);
            foreach (var c in Clients.Values) Assert.True(Server.ReceiveAdvertiseKeys(c.AdvertiseKeys()).Accepted);
            return Server.CloseAdvertiseKeys();
        }

        /// <summary>Honest phases 0-2; returns the honest survivor set the consistency check would sign.</summary>
        public UnmaskRequest RunToConsistencyCheck()
        {
            foreach (var (id, k) in AdvertiseAndClose()) Assert.True(Server!.ReceiveShareKeys(Clients[id].ShareKeys(k)).Accepted);
            foreach (var (id, f) in Server!.CloseShareKeys()) Assert.True(Server.ReceiveMaskedInput(Clients[id].MaskInput(f, _h.Inputs[id])).Accepted);
            return Server.CloseMaskedInput();
        }

        /// <summary>A colluding client's signature over any set: the server holds its key.</summary>
        public ConsistencySignature SignAsColluder(int id, int[] survivors)
        {
            var state = Clients[id].ExportState() with { Phase = SecAggPhase.ConsistencyCheck, SignedSurvivors = null };
            using var twin = SecAggClient.Restore(_h.Parameters, state, _h.SigningKeys![id - 1], _h.Pki, _h.Context);
            return twin.SignSurvivors(new UnmaskRequest(survivors, []));
        }

        public T? Try<T>(int id, Func<T> step) where T : class
        {
            try { return step(); }
            catch (SecAggAbortedException e) { Aborted.Add(e.Message); return null; }
        }

        public IEnumerable<RevealedShare> TryUnmask(int id, UnmaskRequest request) =>
            Clients[id].Phase == SecAggPhase.Unmasking ? Try(id, () => Clients[id].Unmask(request))?.Shares ?? [] : [];

        public void Dispose()
        {
            foreach (var c in Clients.Values) c.Dispose();
        }
    }
}
