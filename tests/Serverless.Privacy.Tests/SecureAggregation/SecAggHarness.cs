using System.Security.Cryptography;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

/// <summary>Drives one in-process round: n clients, a server, and dropouts at chosen phases.</summary>
internal sealed class SecAggHarness
{
    public required SecAggRoundParameters Parameters { get; init; }
    public required Dictionary<int, uint[]> Inputs { get; init; }
    public Dictionary<SecAggPhase, HashSet<int>> DropBefore { get; } = [];
    public Func<int, ShareKeysMessage, ShareKeysMessage>? TamperShareKeys { get; init; }
    public Func<int, UnmaskResponse, UnmaskResponse>? TamperUnmask { get; init; }
    public ECDsa[]? SigningKeys { get; init; }
    public Dictionary<int, byte[]>? Pki { get; init; }
    public byte[]? Context { get; init; }
    public Func<int, MaskedInputMessage, MaskedInputMessage>? TamperMaskedInput { get; init; }
    public SecAggServer? Server { get; private set; }

    /// <summary>The round's clients while <see cref="Run"/> runs (for tampering hooks that need a client's keys).</summary>
    public IReadOnlyDictionary<int, SecAggClient> Clients { get; private set; } = new Dictionary<int, SecAggClient>();

    public static SecAggHarness Create(int n, int threshold, int length, int ringBits = 32, int degree = 0, int seed = 1)
    {
        var rng = new Random(seed);
        var ids = Enumerable.Range(1, n).ToArray();
        var mask = ringBits == 32 ? uint.MaxValue : (1u << ringBits) - 1;
        var inputs = ids.ToDictionary(i => i, _ => Enumerable.Range(0, length).Select(_ => (uint)rng.NextInt64(0, (long)mask + 1)).ToArray());
        var p = new SecAggRoundParameters(RandomNumberGenerator.GetBytes(32), ids, threshold, length, ringBits, degree, degree == 0 ? [] : [1, 2, 3], false);
        return new SecAggHarness { Parameters = p, Inputs = inputs };
    }

    /// <summary>The malicious-server variant: every client has a long-term ECDSA key in the PKI; the threshold is the floor unless given.</summary>
    public static SecAggHarness CreateSigned(int n, int length, int threshold = 0, int ringBits = 32, int degree = 0, int seed = 1)
    {
        var plain = Create(n, 1, length, ringBits, degree, seed);
        var p = plain.Parameters with { RequireSignatures = true, GraphSeed = [] };
        p = p with { Threshold = threshold > 0 ? threshold : p.MaliciousThresholdFloor() };
        var keys = Enumerable.Range(0, n).Select(_ => ECDsa.Create(ECCurve.NamedCurves.nistP256)).ToArray();
        return new SecAggHarness
        {
            Parameters = p, Inputs = plain.Inputs, SigningKeys = keys,
            Pki = Enumerable.Range(1, n).ToDictionary(i => i, i => keys[i - 1].ExportSubjectPublicKeyInfo()),
            Context = "federation:test/round:1/stage:training"u8.ToArray(),
        };
    }

    public void Drop(SecAggPhase before, IEnumerable<int> clients) =>
        DropBefore[before] = [.. clients];

    private bool Alive(int id, SecAggPhase phase) =>
        !DropBefore.Where(kv => kv.Key <= phase).Any(kv => kv.Value.Contains(id));

    public SecAggResult Run()
    {
        var server = Server = new SecAggServer(Parameters, Pki, Context);
        var clients = Parameters.ClientIds.ToDictionary(i => i, i => new SecAggClient(Parameters, i, SigningKeys?[i - 1], Pki, Context));
        Clients = clients;
        try
        {
            foreach (var (id, c) in clients)
                if (Alive(id, SecAggPhase.AdvertiseKeys)) server.ReceiveAdvertiseKeys(c.AdvertiseKeys());
            var keys = server.CloseAdvertiseKeys();
            foreach (var (id, k) in keys)
                if (Alive(id, SecAggPhase.ShareKeys))
                {
                    var m = clients[id].ShareKeys(k);
                    server.ReceiveShareKeys(TamperShareKeys?.Invoke(id, m) ?? m);
                }
            var forwarded = server.CloseShareKeys();
            foreach (var (id, f) in forwarded)
                if (Alive(id, SecAggPhase.MaskedInputCollection))
                {
                    var m = clients[id].MaskInput(f, Inputs[id]);
                    server.ReceiveMaskedInput(TamperMaskedInput?.Invoke(id, m) ?? m);
                }
            var request = server.CloseMaskedInput();
            if (Parameters.RequireSignatures)
            {
                foreach (var (id, c) in clients)
                    if (c.Phase == SecAggPhase.ConsistencyCheck && Alive(id, SecAggPhase.ConsistencyCheck))
                        server.ReceiveConsistencySignature(c.SignSurvivors(request));
                request = server.CloseConsistencyCheck();
            }
            foreach (var (id, c) in clients)
                if (c.Phase == SecAggPhase.Unmasking && Alive(id, SecAggPhase.Unmasking))
                {
                    var r = c.Unmask(request);
                    server.ReceiveUnmaskResponse(TamperUnmask?.Invoke(id, r) ?? r);
                }
            return server.Finish();
        }
        finally
        {
            foreach (var c in clients.Values) c.Dispose();
        }
    }

    public uint[] PlainSum(IEnumerable<int> ids)
    {
        var sum = new uint[Parameters.VectorLength];
        foreach (var id in ids)
            for (var i = 0; i < sum.Length; i++) sum[i] += Inputs[id][i];
        var mask = Parameters.RingBits == 32 ? uint.MaxValue : (1u << Parameters.RingBits) - 1;
        for (var i = 0; i < sum.Length; i++) sum[i] &= mask;
        return sum;
    }
}
