using System.Security.Cryptography;
using System.Text.Json;
using Serverless.Federation.Compression;
using Serverless.Federation.Rounds;
using Serverless.Privacy.SecureAggregation;
using Xunit.Abstractions;

namespace Serverless.Federation.Tests;

/// <summary>
/// Update frames (binary, <see cref="FrameFormatException"/>) and every secure-aggregation message
/// as it travels (JSON with <see cref="RoundJson.Options"/>: System.Text.Json documents
/// <see cref="JsonException"/>; the round parameters also build their graph, which documents
/// <see cref="ArgumentException"/>).
/// </summary>
public sealed class FederationFuzzTests(ITestOutputHelper output)
{
    /// <summary>
    /// Frames carry a truncated SHA-256, so a mutated frame almost always dies at the checksum. Half
    /// the inputs are re-sealed (checksum recomputed) so the body decoders are reached.
    /// </summary>
    private static byte[] Reseal(byte[] frame)
    {
        if (frame.Length < 25) return frame;
        var copy = (byte[])frame.Clone();
        SHA256.HashData(copy.AsSpan(0, copy.Length - 16)).AsSpan(0, 16).CopyTo(copy.AsSpan(copy.Length - 16));
        return copy;
    }

    [Fact]
    public void Update_frame()
    {
        var values = Enumerable.Range(0, 64).Select(i => MathF.Sin(i)).ToArray();
        var sparse = new SparseVector(64, [1, 5, 40, 63], [0.5f, -1, 2, 3]);
        byte[][] samples =
        [
            UpdateFrame.EncodeDense(values),
            UpdateFrame.EncodeQuantized(StochasticQuantizer.Quantize(values, 8, 16, new Random(1))),
            UpdateFrame.EncodeSparse(sparse),
            UpdateFrame.EncodeRing(64, 20, new byte[RingCodec.PackedLength(64, 20)]),
        ];
        // 8 × input + 64 KiB: the body is copied once into its decoded arrays (sparse indices and values,
        // quantized payload, ring bytes: ≤ 1 ×, the sparse count bounded by the input at 5 bytes an entry
        // before its arrays are allocated, issue 20), plus the checksum's hash state. DecodeToDense with the
        // model's parameter count is fuzzed as well: its dense array is the caller's stated size, checked first.
        var spec = new LoaderSpec("update frame", [typeof(FrameFormatException)], 8, 64 << 10);
        Fuzzer.Run(spec, samples, b => UpdateFrame.Decode(b, maxLength: 1 << 20), output, reseal: Reseal);
        var dense = Fuzzer.Run(spec with { Name = "update frame to dense (64 parameters)" }, samples.Take(3).ToArray(),
            b => UpdateFrame.DecodeToDense(b, 64), output, reseal: Reseal);
        Assert.True(dense.Inputs >= Fuzzer.Iterations);
    }

    private static byte[] Bytes(int n, byte fill) => Enumerable.Repeat(fill, n).Select((b, i) => (byte)(b + i)).ToArray();

    private static byte[] Json<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, RoundJson.Options);

    /// <summary>
    /// JSON loaders: 64 × input + 1 MiB. UTF-8 to UTF-16 strings (2 ×), base64 byte arrays (< 1 ×),
    /// arrays grown by doubling (2 ×), records and boxed lists (a few × per element); 64 × is the
    /// slack a token-dense input (e.g. "[0,0,0,…]", 2 bytes per int32 element) needs. 1 MiB covers the
    /// serializer's metadata cache, built once per type on first use.
    /// </summary>
    private static LoaderSpec JsonSpec(string name, params Type[] extra) =>
        new(name, [typeof(JsonException), .. extra], BytesPerInputByte: 64, FixedBytes: 1 << 20);

    private void FuzzJson<T>(string name, T sample, Action<T?>? validate = null, params Type[] extra)
    {
        Fuzzer.Run(JsonSpec(name, extra), [Json(sample)], b =>
        {
            var value = JsonSerializer.Deserialize<T>(b, RoundJson.Options);
            validate?.Invoke(value);
        }, output, text: true);
    }

    private static AdvertiseKeysMessage Advertise(int id) => new(id, Bytes(65, 4), Bytes(65, 9), Bytes(64, 1));

    [Fact]
    public void Secagg_round_parameters() =>
        FuzzJson("secagg round parameters", new SecAggRoundParameters(Bytes(32, 1), [1, 2, 3, 4, 5], 3, 1000, 20, 4, Bytes(32, 2), true),
            p => p?.BuildGraph(), typeof(ArgumentException));

    [Fact] public void Secagg_advertise_keys() => FuzzJson("secagg advertise keys", Advertise(3));

    [Fact] public void Secagg_keys_broadcast() => FuzzJson("secagg keys broadcast", new KeysBroadcast([Advertise(1), Advertise(2), Advertise(3)]));

    [Fact]
    public void Secagg_share_keys() =>
        FuzzJson("secagg share keys", new ShareKeysMessage(1, [new EncryptedShare(1, 2, Bytes(80, 3)), new EncryptedShare(1, 3, Bytes(80, 5))], Bytes(32, 7)));

    [Fact]
    public void Secagg_forwarded_shares() =>
        FuzzJson("secagg forwarded shares", new ForwardedShares([new EncryptedShare(2, 1, Bytes(80, 3)), new EncryptedShare(3, 1, Bytes(80, 5))]));

    [Fact]
    public void Secagg_masked_input() =>
        FuzzJson("secagg masked input", new MaskedInputMessage(2, Bytes(200, 8), [new ShareComplaint(3, "share did not decrypt", Bytes(32, 9))]));

    [Fact] public void Secagg_unmask_request() => FuzzJson("secagg unmask request", new UnmaskRequest([1, 2, 4], [3]));

    [Fact]
    public void Secagg_unmask_response() =>
        FuzzJson("secagg unmask response", new UnmaskResponse(1, [new RevealedShare(2, SharedSecretKind.SelfMaskSeed, Bytes(40, 1)), new RevealedShare(3, SharedSecretKind.MaskingKey, Bytes(40, 2))]));

    [Fact]
    public void Secagg_result() =>
        FuzzJson("secagg result", new SecAggResult([1, 2, 3, 4000000], [1, 2, 4], [new SecAggExclusion(3, SecAggPhase.MaskedInputCollection, "dropped")]));
}
