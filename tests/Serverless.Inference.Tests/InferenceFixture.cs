using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Privacy.Ckks;

namespace Serverless.Inference.Tests;

/// <summary>
/// Shared, expensive state built once: a small cohort, an HE-friendly model trained on it (3-visit
/// window, 2 channels, 2 hidden units), test-only CKKS parameters (N = 4096 with the 11 levels the
/// circuit needs: above the 128-bit bound, accepted with allowInsecureForTests), one partner's keys,
/// and test records with some padded visits so the mask path runs.
/// </summary>
public sealed class InferenceFixture : IDisposable
{
    public const int Steps = 3;

    public InferenceFixture()
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 200, Visits = 6, Seed = 11 });
        var data = CohortDatasets.Build(cohort, steps: Steps, testFraction: 0.3, seed: 3);
        Options = new HeModelOptions { Steps = Steps, ConvChannels = 2, LstmHidden = 2, Epochs = 8, LearningRate = 0.003, Patience = 0, ValidationFraction = 0 };
        Model = HeModel.Train(data.Preprocessor, data.PooledTrain(), Options, parameters: Parameters(Steps), modelVersion: "test-he");
        Records = WithPadding(data.PooledTest());
        Keys = PartnerKeys.Generate(Model.Plan);
        _otherKeys = new Lazy<PartnerKeys>(() => PartnerKeys.Generate(Model.Plan));
        _batch = new Lazy<EncryptedBatch>(() => BatchEncryptor.Encrypt(Records, Keys));
        _batchBytes = new Lazy<byte[]>(() => Batch.ToBytes());
        _result = new Lazy<EncryptedResult>(() => new EncryptedEvaluator(Model, Keys.EvaluationKeys).Evaluate(Batch));
    }

    private readonly Lazy<PartnerKeys> _otherKeys;
    private readonly Lazy<EncryptedBatch> _batch;
    private readonly Lazy<byte[]> _batchBytes;
    private readonly Lazy<EncryptedResult> _result;

    /// <summary>A second partner's keys for the same plan.</summary>
    public PartnerKeys OtherKeys => _otherKeys.Value;

    /// <summary><see cref="Records"/> encrypted under <see cref="Keys"/>.</summary>
    public EncryptedBatch Batch => _batch.Value;

    public byte[] BatchBytes => _batchBytes.Value;

    /// <summary><see cref="Batch"/> evaluated with <see cref="Keys"/>' evaluation keys.</summary>
    public EncryptedResult Result => _result.Value;

    /// <summary>N = 4096, Q = [40, 29 × levels], P = 40, Δ ≈ 2^29 (insecure: tests only), exactly the levels the circuit needs plus <paramref name="extraLevels"/>.</summary>
    public static CkksParameters Parameters(int steps, int extraLevels = 0) =>
        HeModel.CreateParameters(4096, HeModel.LevelsRequired(HeModel.HeFriendlyConfig(15, new HeModelOptions { Steps = steps })) + extraLevels, allowInsecureForTests: true);

    public HeModelOptions Options { get; }

    public HeModel Model { get; }

    /// <summary>Test records; every fifth has its last visit turned into padding, every seventh (from 3) only one real visit.</summary>
    public SequenceDataset Records { get; }

    public PartnerKeys Keys { get; }

    private static SequenceDataset WithPadding(SequenceDataset d)
    {
        var values = d.Values.ToArray();
        var mask = d.Mask.ToArray();
        for (var r = 0; r < d.Count; r++)
        {
            // Every fifth record loses its last visit, every seventh (from 3) keeps only its first.
            var keep = r % 5 == 0 ? d.Steps - 1 : r % 7 == 3 ? 1 : d.Steps;
            for (var t = keep; t < d.Steps; t++)
            {
                mask[r * d.Steps + t] = 0;
                values.AsSpan((r * d.Steps + t) * d.Features, d.Features).Clear();
            }
        }
        return new SequenceDataset(d.Count, d.Steps, d.Features, d.Classes, values, mask, d.Labels.ToArray());
    }

    public void Dispose()
    {
        Keys.Dispose();
        if (_otherKeys.IsValueCreated) _otherKeys.Value.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class InferenceCollection : ICollectionFixture<InferenceFixture>
{
    public const string Name = "inference";
}
