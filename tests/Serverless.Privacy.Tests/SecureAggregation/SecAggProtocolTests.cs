using System.Security.Cryptography;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

public sealed class SecAggProtocolTests
{
    public static TheoryData<SecAggPhase, double> DropoutCases()
    {
        var data = new TheoryData<SecAggPhase, double>();
        foreach (var phase in new[] { SecAggPhase.AdvertiseKeys, SecAggPhase.ShareKeys, SecAggPhase.MaskedInputCollection, SecAggPhase.Unmasking })
            foreach (var rate in new[] { 0.0, 0.1, 0.3 })
                data.Add(phase, rate);
        return data;
    }

    [Theory]
    [MemberData(nameof(DropoutCases))]
    public void Secure_sum_equals_plain_sum_of_survivors_with_dropouts_at_each_phase(SecAggPhase phase, double rate)
    {
        var h = SecAggHarness.Create(n: 20, threshold: 11, length: 257, seed: (int)phase * 10 + (int)(rate * 10));
        var dropped = Enumerable.Range(1, 20).OrderBy(i => (i * 7919) % 20).Take((int)Math.Round(20 * rate)).ToArray();
        h.Drop(phase, dropped);
        var result = h.Run();
        // Clients that dropped before sending their masked input are not in the sum; later dropouts are.
        var expectedIncluded = phase <= SecAggPhase.MaskedInputCollection
            ? Enumerable.Range(1, 20).Except(dropped).ToArray()
            : Enumerable.Range(1, 20).ToArray();
        Assert.Equal(expectedIncluded, result.Included);
        Assert.Equal(h.PlainSum(expectedIncluded), result.Sum);
    }

    [Fact]
    public void Dropouts_at_every_phase_at_once_still_sum_exactly()
    {
        var h = SecAggHarness.Create(n: 30, threshold: 16, length: 100, ringBits: 20);
        h.Drop(SecAggPhase.AdvertiseKeys, [3, 9, 27]);
        h.Drop(SecAggPhase.ShareKeys, [1, 14]);
        h.Drop(SecAggPhase.MaskedInputCollection, [2, 5, 21]);
        h.Drop(SecAggPhase.Unmasking, [7, 8, 30]);
        var result = h.Run();
        var included = Enumerable.Range(1, 30).Except([3, 9, 27, 1, 14, 2, 5, 21]).ToArray();
        Assert.Equal(included, result.Included);
        Assert.Equal(h.PlainSum(included), result.Sum);
    }

    [Fact]
    public void Unmasking_is_refused_when_fewer_than_t_survive()
    {
        var h = SecAggHarness.Create(n: 10, threshold: 6, length: 16);
        h.Drop(SecAggPhase.MaskedInputCollection, [1, 2, 3, 4, 5]);
        var ex = Assert.Throws<SecAggAbortedException>(() => h.Run());
        Assert.Contains("threshold", ex.Message);
    }

    [Fact]
    public void Exactly_t_survivors_unmask_each_other_with_their_own_shares()
    {
        // Each client keeps (and reveals) its own share, as in Bonawitz et al.: t survivors suffice, not t + 1.
        var h = SecAggHarness.Create(n: 6, threshold: 3, length: 16);
        h.Drop(SecAggPhase.MaskedInputCollection, [1, 4, 6]);
        var result = h.Run();
        Assert.Equal([2, 3, 5], result.Included);
        Assert.Equal(h.PlainSum([2, 3, 5]), result.Sum);
    }

    [Fact]
    public void Unmasking_is_refused_when_too_few_respond_with_shares()
    {
        var h = SecAggHarness.Create(n: 10, threshold: 6, length: 16);
        h.Drop(SecAggPhase.Unmasking, [1, 2, 3, 4, 5]);
        var ex = Assert.Throws<SecAggAbortedException>(() => h.Run());
        Assert.Contains("refusing to unmask", ex.Message);
    }

    [Fact]
    public void A_bundle_that_does_not_open_proves_nothing_and_its_sender_stays_in_the_exact_sum()
    {
        // A garbled bundle and a wrong revealed key look the same to the server: nobody is blamed, the recipient simply
        // holds no share of the sender (11 others still do, t = 7).
        var h = new SecAggHarness
        {
            Parameters = SecAggHarness.Create(12, 7, 64).Parameters,
            Inputs = SecAggHarness.Create(12, 7, 64).Inputs,
            TamperShareKeys = (id, m) => id != 4 ? m : m with { Shares = m.Shares.Select(s => s.To == 9 ? s with { Ciphertext = Flip(s.Ciphertext, 30) } : s).ToArray() },
        };
        var result = h.Run();
        Assert.Equal(Enumerable.Range(1, 12), result.Included);
        Assert.Empty(result.Exclusions);
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 12)), result.Sum);
    }

    [Fact]
    public void A_false_complaint_is_disproved_by_its_own_key_and_excludes_the_accuser_not_the_accused()
    {
        // Client 9 accuses client 4, whose bundle was fine, and reveals the key as it must: the bundle opens to valid
        // shares, so the accusation is a lie. On main before proofs, one such complaint removed client 4 from the sum.
        byte[]? revealed = null;
        var template = SecAggHarness.Create(12, 7, 64);
        SecAggHarness h = null!;
        h = new SecAggHarness
        {
            Parameters = template.Parameters, Inputs = template.Inputs,
            TamperMaskedInput = (id, m) => id != 9 ? m : m with { Complaints = [new ShareComplaint(4, "share bundle failed authentication", revealed = KeyBetween(h, 4, 9))] },
        };
        var result = h.Run();
        Assert.NotNull(revealed);
        Assert.Contains(4, result.Included);
        Assert.DoesNotContain(9, result.Included);
        var exclusion = Assert.Single(result.Exclusions);
        Assert.Equal(9, exclusion.ClientId);
        Assert.Contains("false", exclusion.Reason);
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 12).Except([9])), result.Sum);
    }

    [Fact]
    public void A_complaint_without_proof_changes_no_ones_place()
    {
        var h = new SecAggHarness
        {
            Parameters = SecAggHarness.Create(12, 7, 64).Parameters,
            Inputs = SecAggHarness.Create(12, 7, 64).Inputs,
            TamperMaskedInput = (id, m) => id switch
            {
                9 => m with { Complaints = [new ShareComplaint(4, "share bundle failed authentication")] },                    // no key
                10 => m with { Complaints = [new ShareComplaint(5, "share bundle failed authentication", RandomNumberGenerator.GetBytes(32))] }, // a key that opens nothing
                _ => m,
            },
        };
        var result = h.Run();
        Assert.Equal(Enumerable.Range(1, 12), result.Included);
        Assert.Empty(result.Exclusions);
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 12)), result.Sum);
    }

    [Fact]
    public void A_bundle_proven_bad_by_the_revealed_key_excludes_its_sender_and_the_sum_stays_exact()
    {
        // Client 4 encrypts shares outside the field for client 9 under the right key: 9 complains with that key, the
        // server opens the stored bundle, sees the bad shares itself, and leaves 4 out.
        SecAggHarness h = null!;
        var template = SecAggHarness.Create(12, 7, 64);
        h = new SecAggHarness
        {
            Parameters = template.Parameters, Inputs = template.Inputs,
            TamperShareKeys = (id, m) =>
            {
                if (id != 4) return m;
                var garbage = Enumerable.Repeat((byte)0xFF, SecAggCrypto.ShareLength).ToArray();
                var bundle = SecAggCrypto.EncryptBundle(KeyBetween(h, 4, 9), h.Parameters.RoundId, 4, 9, garbage, garbage);
                return m with { Shares = m.Shares.Select(s => s.To == 9 ? s with { Ciphertext = bundle } : s).ToArray() };
            },
        };
        var result = h.Run();
        Assert.DoesNotContain(4, result.Included);
        var exclusion = Assert.Single(result.Exclusions);
        Assert.Equal(4, exclusion.ClientId);
        Assert.Contains("proved", exclusion.Reason);
        Assert.Contains("outside the field", exclusion.Reason);
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 12).Except([4])), result.Sum);
    }

    [Fact]
    public void The_revealed_key_opens_only_the_bundle_the_complainer_received()
    {
        using var a = SecAggCrypto.NewKeyPair();
        using var b = SecAggCrypto.NewKeyPair();
        var round = RandomNumberGenerator.GetBytes(32);
        var share = new byte[SecAggCrypto.ShareLength];
        var toB = SecAggCrypto.EncryptBundle(SecAggCrypto.ShareKey(a, b.PublicKey, round, 1, 2), round, 1, 2, share, share);
        var toA = SecAggCrypto.EncryptBundle(SecAggCrypto.ShareKey(b, a.PublicKey, round, 2, 1), round, 2, 1, share, share);
        var revealedByB = SecAggCrypto.ShareKey(b, a.PublicKey, round, 1, 2);
        Assert.Equal(SecAggCrypto.ShareKey(a, b.PublicKey, round, 1, 2), revealedByB);   // both ends derive it
        Assert.Equal(ComplaintFinding.Disproved, SecAggCrypto.JudgeComplaint(revealedByB, round, 1, 2, toB).Finding);
        // B's own bundle to A (B's shares) stays closed to whoever holds B's complaint key.
        Assert.Equal(ComplaintFinding.Unproven, SecAggCrypto.JudgeComplaint(revealedByB, round, 2, 1, toA).Finding);
        Assert.Null(SecAggCrypto.TryDecryptBundle(SecAggCrypto.ShareKey(a, b.PublicKey, round, 2, 1), round, 2, 1, toA, out _, out _));
    }

    /// <summary>The key of the bundle <paramref name="from"/> sends <paramref name="to"/>, from the running clients' exported keys.</summary>
    private static byte[] KeyBetween(SecAggHarness h, int from, int to)
    {
        var sender = h.Clients[from].ExportState();
        var recipient = h.Clients[to].ExportState();
        using var own = SecAggCrypto.TryRebuild(sender.EncryptionPrivateKey, sender.EncryptionPublicKey)!;
        Assert.True(SecAggCrypto.TryImportPublic(recipient.EncryptionPublicKey, out var peer));
        using (peer) return SecAggCrypto.ShareKey(own, peer!, h.Parameters.RoundId, from, to);
    }

    [Fact]
    public void A_structurally_malformed_share_message_is_excluded_not_a_crash()
    {
        var h = new SecAggHarness
        {
            Parameters = SecAggHarness.Create(8, 4, 10).Parameters,
            Inputs = SecAggHarness.Create(8, 4, 10).Inputs,
            TamperShareKeys = (id, m) => id switch
            {
                2 => m with { Shares = m.Shares[1..] },                                          // one recipient missing
                3 => m with { Shares = [m.Shares[0], .. m.Shares[..^1]] },                       // duplicate recipient
                5 => m with { Shares = m.Shares.Select(s => s with { Ciphertext = s.Ciphertext[..^1] }).ToArray() }, // wrong size
                _ => m,
            },
        };
        var result = h.Run();
        Assert.Equal([1, 4, 6, 7, 8], result.Included);
        Assert.Contains(result.Exclusions, e => e.ClientId == 2 && e.Reason.Contains("missing"));
        Assert.Contains(result.Exclusions, e => e.ClientId == 3 && e.Reason.Contains("two shares"));
        Assert.Contains(result.Exclusions, e => e.ClientId == 5 && e.Reason.Contains("bytes"));
        Assert.Equal(h.PlainSum([1, 4, 6, 7, 8]), result.Sum);
    }

    [Fact]
    public void An_inconsistent_revealed_share_is_detected_and_the_sum_stays_exact()
    {
        var h = new SecAggHarness
        {
            Parameters = SecAggHarness.Create(10, 5, 32).Parameters,
            Inputs = SecAggHarness.Create(10, 5, 32).Inputs,
            TamperUnmask = (id, r) => id == 1
                ? r with { Shares = r.Shares.Select(s => s with { Share = AddOne(s.Share) }).ToArray() }
                : r,
        };
        h.Drop(SecAggPhase.MaskedInputCollection, [10]);
        var result = h.Run();
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 9)), result.Sum);
        Assert.Contains(result.Exclusions, e => e.ClientId == 1 && e.Phase == SecAggPhase.Unmasking && e.Reason.Contains("inconsistent"));
    }

    [Fact]
    public void Wrong_shares_in_every_window_of_t_are_corrected_and_their_holders_named()
    {
        // n = 9, t = 3: clients 1, 4 and 7 reveal wrong shares, so every run of 3 consecutive holders holds one; trying windows
        // (as before) found no clean set and refused to unmask. Berlekamp-Welch corrects (9 - 3) / 2 = 3 errors.
        int[] liars = [1, 4, 7];
        var h = new SecAggHarness
        {
            Parameters = SecAggHarness.Create(9, 3, 16).Parameters,
            Inputs = SecAggHarness.Create(9, 3, 16).Inputs,
            TamperUnmask = (id, r) => liars.Contains(id) ? r with { Shares = r.Shares.Select(s => s with { Share = AddOne(s.Share) }).ToArray() } : r,
        };
        var result = h.Run();
        Assert.Equal(h.PlainSum(Enumerable.Range(1, 9)), result.Sum);
        Assert.Equal(liars, result.Exclusions.Where(e => e.Phase == SecAggPhase.Unmasking && e.Reason.Contains("inconsistent")).Select(e => e.ClientId).Distinct().Order());
    }

    [Fact]
    public void SecAggPlus_gives_the_same_sum_as_SecAgg()
    {
        const int n = 40;
        var full = SecAggHarness.Create(n, 21, 50, seed: 5);
        var degree = NeighbourGraph.RecommendedDegree(n);
        Assert.True(degree < n - 1);
        var plus = new SecAggHarness
        {
            Parameters = full.Parameters with { RoundId = RandomNumberGenerator.GetBytes(32), NeighbourDegree = degree, GraphSeed = [9, 9], Threshold = degree / 2 + 1 },
            Inputs = full.Inputs,
        };
        var dropped = new[] { 4, 17, 33 };
        full.Drop(SecAggPhase.MaskedInputCollection, dropped);
        plus.Drop(SecAggPhase.MaskedInputCollection, dropped);
        var a = full.Run();
        var b = plus.Run();
        Assert.Equal(a.Included, b.Included);
        Assert.Equal(a.Sum, b.Sum);
        Assert.Equal(full.PlainSum(a.Included), b.Sum);
    }

    [Fact]
    public void Signed_round_accepts_valid_signatures_and_excludes_a_forged_key()
    {
        var baseline = SecAggHarness.Create(6, 5, 8);
        var signers = Enumerable.Range(0, 6).Select(_ => ECDsa.Create(ECCurve.NamedCurves.nistP256)).ToArray();
        var pki = Enumerable.Range(1, 6).ToDictionary(i => i, i => signers[i - 1].ExportSubjectPublicKeyInfo());
        // Client 6 signs with a key the PKI does not know.
        signers[5] = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var h = new SecAggHarness { Parameters = baseline.Parameters with { RequireSignatures = true }, Inputs = baseline.Inputs, SigningKeys = signers, Pki = pki };
        var result = h.Run();
        // Client 6 is out at once: its key set never reaches a peer. The other five unmask each other (t = 5, the floor for 6).
        Assert.Equal([1, 2, 3, 4, 5], result.Included);
        Assert.Contains(result.Exclusions, e => e.ClientId == 6 && e.Reason.Contains("signature"));
        Assert.Equal(h.PlainSum([1, 2, 3, 4, 5]), result.Sum);
    }

    [Fact]
    public void Server_rejects_messages_out_of_phase_duplicates_and_strangers()
    {
        var h = SecAggHarness.Create(4, 2, 4);
        var server = new SecAggServer(h.Parameters);
        using var c1 = new SecAggClient(h.Parameters, 1);
        var ad = c1.AdvertiseKeys();
        Assert.True(server.ReceiveAdvertiseKeys(ad).Accepted);
        Assert.False(server.ReceiveAdvertiseKeys(ad).Accepted);
        Assert.False(server.ReceiveAdvertiseKeys(ad with { ClientId = 99 }).Accepted);
        var bad = server.ReceiveAdvertiseKeys(new AdvertiseKeysMessage(2, new byte[33], new byte[33], []));
        Assert.False(bad.Accepted);
        Assert.Contains("P-256", bad.Reason);
        Assert.False(server.ReceiveMaskedInput(new MaskedInputMessage(1, new byte[16], [])).Accepted);
        Assert.Throws<InvalidOperationException>(() => server.Finish());
    }

    [Fact]
    public void Client_aborts_when_the_server_asks_for_both_secrets_of_one_client()
    {
        var h = SecAggHarness.Create(4, 2, 4);
        var server = new SecAggServer(h.Parameters);
        var clients = Enumerable.Range(1, 4).ToDictionary(i => i, i => new SecAggClient(h.Parameters, i));
        foreach (var c in clients.Values) server.ReceiveAdvertiseKeys(c.AdvertiseKeys());
        foreach (var (id, k) in server.CloseAdvertiseKeys()) server.ReceiveShareKeys(clients[id].ShareKeys(k));
        foreach (var (id, f) in server.CloseShareKeys()) server.ReceiveMaskedInput(clients[id].MaskInput(f, h.Inputs[id]));
        Assert.Throws<SecAggAbortedException>(() => clients[1].Unmask(new UnmaskRequest([1, 2, 3, 4], [2])));
    }

    private static byte[] Flip(byte[] data, int index)
    {
        var copy = (byte[])data.Clone();
        copy[index] ^= 0x01;
        return copy;
    }

    private static byte[] AddOne(byte[] share)
    {
        var copy = (byte[])share.Clone();
        copy[0] = (byte)(copy[0] == 0 ? 1 : copy[0] - 1);
        return copy;
    }
}
