using Serverless.Inference;
using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;
using Xunit.Abstractions;

namespace Serverless.Inference.Tests;

/// <summary>
/// Valid samples of every encrypted-inference object, built once. The CKKS parameters are the
/// smallest the format accepts (N = 4096, one level: q_0, q_1, P) so a full parse of a bit-flipped
/// key stays cheap; the plan is one feature over one step. The CKKS and Paillier serializers
/// underneath are fuzzed in the privacy library's tests.
/// </summary>
public sealed class InferenceSamples : IDisposable
{
    public InferenceSamples()
    {
        Parameters = HeModel.CreateParameters(4096, 1, allowInsecureForTests: true);
        Plan = new EvaluationPlan(Parameters, "fuzz", features: 1, steps: 1, levelsConsumed: 1, maxRecords: 4096);
        Context = Plan.Context;
        Keys = PartnerKeys.Generate(Plan);
        var plain = new Encoder(Context).Encode(Enumerable.Range(0, 16).Select(i => i / 16.0).ToArray());
        var bottom = new Encryptor(Context, Keys.EvaluationKeys.PublicKey).Encrypt(plain);
        new Evaluator(Context).ModSwitchToInPlace(bottom, 0);

        var values = new float[3];
        var mask = new float[] { 1, 1, 1 };
        values[0] = 0.25f; values[1] = -0.5f; values[2] = 1;
        var batch = BatchEncryptor.Encrypt(values, mask, 3, Keys);
        BatchBytes = batch.ToBytes();
        GroupBytes = batch.Groups[0].ToBytes();
        var group = new EncryptedGroupResult(Plan, 0, 3, batch.KeyId.ToArray(), bottom);
        GroupResultBytes = group.ToBytes();
        ResultBytes = EncryptedResult.Join(Plan, [group]).ToBytes();
        EvaluationKeyBytes = Keys.EvaluationKeys.ToBytes();
        PartnerKeyBytes = Keys.Export();
        PlanJson = System.Text.Encoding.UTF8.GetBytes(Plan.ToJson());
    }

    public CkksParameters Parameters { get; }
    public EvaluationPlan Plan { get; }
    public CkksContext Context { get; }
    public PartnerKeys Keys { get; }
    public byte[] BatchBytes { get; }
    public byte[] GroupBytes { get; }
    public byte[] GroupResultBytes { get; }
    public byte[] ResultBytes { get; }
    public byte[] EvaluationKeyBytes { get; }
    public byte[] PartnerKeyBytes { get; }
    public byte[] PlanJson { get; }

    public void Dispose() => Keys.Dispose();
}

/// <summary>
/// The encrypted-inference loaders (batches, groups, results, keys, the plan):
/// every one documents <see cref="HeFormatException"/> as its only failure.
/// Allocation bound, every loader here: 4 × input + 2 MiB. The loaders copy the input at most once
/// into residues (u64 per u64 read: 1 ×) plus one length-prefixed blob copy in the stream readers
/// (1 ×) and a parsed object of the same size (1 ×); one more for slack. The 2 MiB intercept covers
/// what the parameters, not the input, dictate: a public key's or switching key's uniform
/// polynomial a expanded from its 32-byte seed ((L + 2) limbs × N × 8 B per digit, 2 × 3 × 4096 × 8
/// = 196 KiB here), the seeded ciphertext's expanded second polynomial, and exception messages.
/// </summary>
public sealed class LoaderFuzzTests(InferenceSamples s, ITestOutputHelper output) : IClassFixture<InferenceSamples>
{
    private static readonly Type[] He = [typeof(HeFormatException)];

    private static LoaderSpec Spec(string name) => new(name, He, BytesPerInputByte: 4, FixedBytes: 2 << 20);

    private void Fuzz(string name, IReadOnlyList<byte[]> samples, Action<byte[]> load, IReadOnlyList<byte[]>? regressions = null)
    {
        Fuzzer.Run(Spec(name), samples, load, output, regressions);
    }

    [Fact] public void Encrypted_batch() => Fuzz("encrypted batch", [s.BatchBytes], b => EncryptedBatch.Read(b, s.Plan));
    [Fact] public void Ciphertext_group() => Fuzz("ciphertext group", [s.GroupBytes], b => CiphertextGroup.Read(b, s.Plan));
    [Fact] public void Encrypted_result() => Fuzz("encrypted result", [s.ResultBytes], b => EncryptedResult.Read(b, s.Plan));
    [Fact] public void Encrypted_group_result() => Fuzz("encrypted group result", [s.GroupResultBytes], b => EncryptedGroupResult.Read(b, s.Plan));
    [Fact] public void Evaluation_keys() => Fuzz("evaluation keys", [s.EvaluationKeyBytes], b => EvaluationKeys.Read(b, s.Plan));

    [Fact]
    public void Partner_keys() => Fuzz("partner keys", [s.PartnerKeyBytes], b => PartnerKeys.Import(b, s.Plan).Dispose(), PartnerKeyRegressions());

    [Fact]
    public void Evaluation_plan_json() =>
        Fuzzer.Run(Spec("evaluation plan json") with { BytesPerInputByte = 64 }, [s.PlanJson],
            b => EvaluationPlan.FromJson(System.Text.Encoding.UTF8.GetString(b), allowInsecureForTests: true), output, text: true);

    /// <summary>Inputs that once broke a loader (kept as regression cases).</summary>
    /// <remarks>
    /// Found by seed 19: a partner-key blob whose evaluation-key length prefix says int.MaxValue − 64
    /// made <c>PartnerKeys.Import</c> allocate that much before reading (1.1 GB from 360 KB). The
    /// smallest form: header, parameter hash, a 1-byte secret-key blob, then the oversized prefix (48 bytes).
    /// </remarks>
    private IReadOnlyList<byte[]> PartnerKeyRegressions() =>
    [
        [.. "HEIN"u8, 1, 0, 5, .. s.Plan.ParameterHash.Span, 1, 0, 0, 0, 0xAB, 0xBF, 0xFF, 0xFF, 0x7F],
    ];
}
