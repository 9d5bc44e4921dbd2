using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

/// <summary>A client's exported state resumes it at any phase with the same keys and shares.</summary>
public sealed class SecAggClientStateTests
{
    [Theory]
    [InlineData(SecAggPhase.ShareKeys)]
    [InlineData(SecAggPhase.MaskedInputCollection)]
    [InlineData(SecAggPhase.Unmasking)]
    public void A_client_restored_before_a_phase_finishes_the_round_with_an_exact_sum(SecAggPhase restoreBefore)
    {
        int[] ids = [1, 2, 3, 4];
        var p = new SecAggRoundParameters(new byte[32].Select((_, i) => (byte)(i + 1)).ToArray(), ids, 2, 6, 16, 0, [], false);
        var random = new Random(7);
        var inputs = ids.ToDictionary(i => i, _ => Enumerable.Range(0, 6).Select(_ => (uint)random.Next(0, 1 << 12)).ToArray());
        var clients = ids.ToDictionary(i => i, i => new SecAggClient(p, i));
        var server = new SecAggServer(p);
        void Resume(SecAggPhase phase)
        {
            if (phase != restoreBefore) return;
            var state = clients[2].ExportState();
            Assert.Equal(phase, state.Phase);
            clients[2].Dispose();
            clients[2] = SecAggClient.Restore(p, state);
        }
        try
        {
            foreach (var i in ids) Assert.True(server.ReceiveAdvertiseKeys(clients[i].AdvertiseKeys()).Accepted);
            var keys = server.CloseAdvertiseKeys();
            Resume(SecAggPhase.ShareKeys);
            foreach (var i in ids) Assert.True(server.ReceiveShareKeys(clients[i].ShareKeys(keys[i])).Accepted);
            var shares = server.CloseShareKeys();
            Resume(SecAggPhase.MaskedInputCollection);
            foreach (var i in ids) Assert.True(server.ReceiveMaskedInput(clients[i].MaskInput(shares[i], inputs[i])).Accepted);
            var request = server.CloseMaskedInput();
            Resume(SecAggPhase.Unmasking);
            foreach (var i in ids.Where(i => i != 4)) Assert.True(server.ReceiveUnmaskResponse(clients[i].Unmask(request)).Accepted);
            var result = server.Finish();
            var expected = new uint[6];
            foreach (var i in ids) for (var k = 0; k < 6; k++) expected[k] = (expected[k] + inputs[i][k]) & 0xFFFF;
            Assert.Equal(expected, result.Sum);
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    [Fact]
    public void A_state_from_another_round_or_tampered_is_refused()
    {
        int[] ids = [1, 2, 3];
        var p = new SecAggRoundParameters(new byte[32].Select((_, i) => (byte)(i + 7)).ToArray(), ids, 2, 4, 16, 0, [], false);
        using var client = new SecAggClient(p, 1);
        client.AdvertiseKeys();
        var state = client.ExportState();
        var other = p with { RoundId = new byte[32] };
        Assert.Throws<ArgumentException>(() => SecAggClient.Restore(other, state));
        var wrongKey = (byte[])state.MaskingPrivateKey.Clone();
        wrongKey[^1] ^= 1;
        Assert.Throws<ArgumentException>(() => SecAggClient.Restore(p, state with { MaskingPrivateKey = wrongKey }));
        Assert.Throws<ArgumentException>(() => SecAggClient.Restore(p, state with { SelfMaskSeed = new byte[5] }));
        using var restored = SecAggClient.Restore(p, state);
        Assert.Equal(SecAggPhase.ShareKeys, restored.Phase);
        Assert.Equal(state.MaskingPublicKey, restored.ExportState().MaskingPublicKey);
    }
}
