using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Privacy.Serialization;

namespace Serverless.Inference.Tests;

[Collection(InferenceCollection.Name)]
public sealed class SerializationTests(InferenceFixture fx)
{
    [Fact]
    public void Plan_round_trips_through_json_and_describes_the_layout()
    {
        var plan = fx.Model.Plan;
        var back = EvaluationPlan.FromJson(plan.ToJson(), allowInsecureForTests: true);
        Assert.Equal(plan.ParameterHash.ToArray(), back.ParameterHash.ToArray());
        Assert.Equal(plan.ToJson(), back.ToJson());
        Assert.Equal((plan.Features, plan.Steps, plan.LevelsConsumed, plan.MaxRecords, plan.ModelVersion),
            (back.Features, back.Steps, back.LevelsConsumed, back.MaxRecords, back.ModelVersion));
        Assert.Empty(plan.GaloisElements);
        Assert.Equal(plan.Parameters.N / 2, plan.SlotsPerCiphertext);
        Assert.Equal(InferenceFixture.Steps * (fx.Records.Features + 1), plan.CiphertextsPerGroup);
        Assert.Equal("test-he", plan.ModelVersion);
    }

    [Fact]
    public void Plan_json_is_checked()
    {
        var json = fx.Model.Plan.ToJson();
        // The fixture's parameters are above the 128-bit bound: refused unless the caller opts in.
        Assert.Contains("128-bit", Assert.Throws<HeFormatException>(() => EvaluationPlan.FromJson(json)).Message);
        var hash = Convert.ToHexString(fx.Model.Plan.ParameterHash.Span);
        var tampered = json.Replace(hash, "00" + hash[2..]);
        Assert.Contains("hash", Assert.Throws<HeFormatException>(() => EvaluationPlan.FromJson(tampered, allowInsecureForTests: true)).Message);
        Assert.Throws<HeFormatException>(() => EvaluationPlan.FromJson("{not json", allowInsecureForTests: true));
        var steps = json.Replace("\"Steps\":3", "\"Steps\":0");
        Assert.Contains("out of range", Assert.Throws<HeFormatException>(() => EvaluationPlan.FromJson(steps, allowInsecureForTests: true)).Message);
    }

    [Fact]
    public void Evaluation_keys_round_trip_and_carry_no_secret()
    {
        var bytes = fx.Keys.EvaluationKeys.ToBytes();
        var back = EvaluationKeys.Read(bytes, fx.Model.Plan);
        Assert.Equal(fx.Keys.EvaluationKeys.KeyId.ToArray(), back.KeyId.ToArray());
        Assert.Equal(bytes, back.ToBytes());
        Assert.NotEqual(fx.Keys.EvaluationKeys.KeyIdHex, fx.OtherKeys.EvaluationKeys.KeyIdHex);
    }

    [Fact]
    public void Partner_keys_round_trip_and_still_decrypt()
    {
        using var imported = PartnerKeys.Import(fx.Keys.Export(), fx.Model.Plan);
        Assert.Equal(fx.Keys.EvaluationKeys.KeyId.ToArray(), imported.EvaluationKeys.KeyId.ToArray());
        var a = ScoreDecryptor.Decrypt(fx.Result.ToBytes(), fx.Keys);
        var b = ScoreDecryptor.Decrypt(fx.Result.ToBytes(), imported);
        Assert.Equal(a, b);
    }

    [Fact]
    public void Batch_group_and_result_round_trip_byte_for_byte()
    {
        var plan = fx.Model.Plan;
        var batch = EncryptedBatch.Read(fx.BatchBytes, plan);
        Assert.Equal(fx.Records.Count, batch.RecordCount);
        Assert.Equal(fx.Batch.KeyId.ToArray(), batch.KeyId.ToArray());
        Assert.Equal(fx.BatchBytes, batch.ToBytes());
        using (var ms = new MemoryStream(fx.BatchBytes))
            Assert.Equal(fx.BatchBytes, EncryptedBatch.Read(ms, plan).ToBytes());
        var group = fx.Batch.Groups[0].ToBytes();
        Assert.Equal(group, CiphertextGroup.Read(group, plan).ToBytes());
        var result = fx.Result.ToBytes();
        Assert.Equal(result, EncryptedResult.Read(result, plan).ToBytes());
        var groupResult = fx.Result.Groups[0].ToBytes();
        Assert.Equal(groupResult, EncryptedGroupResult.Read(groupResult, plan).ToBytes());
    }

    [Fact]
    public void The_batch_reader_splits_a_batch_into_group_blobs_one_group_at_a_time()
    {
        var plan = fx.Model.Plan;
        var idx = Enumerable.Range(0, plan.SlotsPerCiphertext + 5).Select(i => i % fx.Records.Count).ToArray();
        var batch = BatchEncryptor.Encrypt(fx.Records.Subset(idx), fx.Keys);
        var bytes = batch.ToBytes();
        using (var stream = new MemoryStream(bytes))
        {
            var reader = EncryptedBatchReader.Open(stream, plan);
            Assert.Equal((idx.Length, 2), (reader.RecordCount, reader.GroupCount));
            Assert.Equal(batch.KeyId.ToArray(), reader.KeyId.ToArray());
            for (var g = 0; g < reader.GroupCount; g++)
            {
                var group = reader.ReadGroup();
                Assert.Equal(g, group.Index);
                Assert.Equal(batch.Groups[g].ToBytes(), group.ToBytes());
            }
            Assert.Throws<InvalidOperationException>(() => reader.ReadGroup());
            reader.Finish();
        }
        using (var trailing = new MemoryStream([.. bytes, 1]))
        {
            var reader = EncryptedBatchReader.Open(trailing, plan);
            reader.ReadGroup();
            Assert.Throws<InvalidOperationException>(() => reader.Finish()); // a group left unread
            reader.ReadGroup();
            Assert.Contains("trailing", Assert.Throws<HeFormatException>(() => reader.Finish()).Message);
        }
        Assert.Contains("too many records", Assert.Throws<HeFormatException>(() => EncryptedBatchReader.Open(new MemoryStream(bytes), plan, maxRecords: plan.SlotsPerCiphertext)).Message);
    }

    [Fact]
    public void Symmetric_batches_travel_at_about_half_the_size_of_public_key_batches()
    {
        var records = fx.Records.Subset([0, 1]);
        var symmetric = BatchEncryptor.Encrypt(records, fx.Keys).ToBytes().Length;
        var publicKey = BatchEncryptor.Encrypt(records, fx.Keys.EvaluationKeys).ToBytes().Length;
        Assert.InRange(symmetric / (double)publicKey, 0.45, 0.55);
        // And a public-key batch evaluates and decrypts like any other.
        var result = new EncryptedEvaluator(fx.Model, fx.Keys.EvaluationKeys).Evaluate(
            EncryptedBatch.Read(BatchEncryptor.Encrypt(records, fx.Keys.EvaluationKeys).ToBytes(), fx.Model.Plan));
        var scores = ScoreDecryptor.Decrypt(result.ToBytes(), fx.Keys);
        var plain = fx.Model.PredictPlain(records);
        Assert.Equal(plain[0], scores[0], 1e-3);
        Assert.Equal(plain[1], scores[1], 1e-3);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(40)]
    [InlineData(100)]
    [InlineData(1000)]
    [InlineData(-1)] // one byte short
    public void Truncated_batches_are_refused(int keep)
    {
        var bytes = fx.BatchBytes;
        var cut = keep >= 0 ? bytes[..keep] : bytes[..^1];
        var e = Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(cut, fx.Model.Plan));
        Assert.Contains("truncated", e.Message);
        Assert.Equal(InferenceErrors.Truncated, InferenceErrors.ReasonOf(e));
    }

    [Fact]
    public void Trailing_bytes_and_bad_magic_are_refused()
    {
        var bytes = fx.BatchBytes;
        Assert.Contains("trailing", Assert.Throws<HeFormatException>(() => EncryptedBatch.Read((byte[])[.. bytes, 0], fx.Model.Plan)).Message);
        var bad = bytes.ToArray();
        bad[0] ^= 0xFF;
        Assert.Contains("magic", Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(bad, fx.Model.Plan)).Message);
        // A result blob is not a batch.
        Assert.Contains("expected a Batch", Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(fx.Result.ToBytes(), fx.Model.Plan)).Message);
    }

    [Fact]
    public void A_batch_under_other_parameters_is_refused()
    {
        var other = HeModel.Create(fx.Model.Checkpoint, InferenceFixture.Parameters(InferenceFixture.Steps, extraLevels: 1));
        var e = Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(fx.BatchBytes, other.Plan));
        Assert.Contains("parameter hash mismatch", e.Message);
        Assert.Equal(InferenceErrors.WrongParameters, InferenceErrors.ReasonOf(e));
        Assert.Throws<HeFormatException>(() => EvaluationKeys.Read(fx.Keys.EvaluationKeys.ToBytes(), other.Plan));
        Assert.Throws<HeFormatException>(() => EncryptedResult.Read(fx.Result.ToBytes(), other.Plan));
    }

    [Fact]
    public void Too_many_records_are_refused_before_reading_the_ciphertexts()
    {
        var e = Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(fx.BatchBytes, fx.Model.Plan, maxRecords: 10));
        Assert.Contains($"too many records, {fx.Records.Count} exceeds the limit of 10", e.Message);
        Assert.Equal(InferenceErrors.TooManyRecords, InferenceErrors.ReasonOf(e));
        // The header alone is enough to refuse: the ciphertexts are never read.
        var header = fx.BatchBytes[..(7 + 32 + 32 + 16)];
        Assert.Contains("too many records", Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(header, fx.Model.Plan, maxRecords: 10)).Message);
        // A record count that disagrees with the groups is refused too.
        var lying = fx.BatchBytes.ToArray();
        BitConverter.TryWriteBytes(lying.AsSpan(7 + 32 + 32), fx.Records.Count - 1);
        Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(lying, fx.Model.Plan));
    }

    [Fact]
    public void A_corrupted_residue_is_refused()
    {
        var bad = fx.BatchBytes.ToArray();
        // Set the last 8 bytes (a residue of the last ciphertext) to all ones: not below any prime.
        bad.AsSpan(bad.Length - 8).Fill(0xFF);
        var e = Assert.Throws<HeFormatException>(() => EncryptedBatch.Read(bad, fx.Model.Plan));
        Assert.Contains("not below its prime", e.Message);
        Assert.Null(InferenceErrors.ReasonOf(e)); // plain malformed input
    }

    [Fact]
    public void The_encryptor_validates_records()
    {
        var plan = fx.Model.Plan;
        var d = fx.Records.Subset([0, 1]);
        Assert.Throws<ArgumentException>(() => BatchEncryptor.Encrypt(d.Values.AsSpan(1), d.Mask, 2, fx.Keys));
        var noVisit = d.Mask.ToArray();
        noVisit.AsSpan(0, plan.Steps).Clear();
        Assert.Contains("no real visit", Assert.Throws<ArgumentException>(() => BatchEncryptor.Encrypt(d.Values, noVisit, 2, fx.Keys)).Message);
        var gap = d.Mask.ToArray();
        gap[1] = 0;
        gap[2] = 1;
        Assert.Contains("after padding", Assert.Throws<ArgumentException>(() => BatchEncryptor.Encrypt(d.Values, gap, 2, fx.Keys)).Message);
        var nan = d.Values.ToArray();
        nan[3] = float.NaN;
        Assert.Throws<ArgumentException>(() => BatchEncryptor.Encrypt(nan, d.Mask, 2, fx.Keys));
        var tooMany = HeModel.Create(fx.Model.Checkpoint, fx.Model.Plan.Parameters, maxRecords: 1);
        using var keys = PartnerKeys.Generate(tooMany.Plan);
        Assert.Contains("exceed", Assert.Throws<ArgumentException>(() => BatchEncryptor.Encrypt(d, keys)).Message);
    }

    [Fact]
    public void Evaluation_keys_blobs_are_validated()
    {
        var bytes = fx.Keys.EvaluationKeys.ToBytes();
        Assert.Contains("truncated", Assert.Throws<HeFormatException>(() => EvaluationKeys.Read(bytes[..^3], fx.Model.Plan)).Message);
        Assert.Throws<HeFormatException>(() => EvaluationKeys.Read(fx.Keys.Export(), fx.Model.Plan)); // partner keys are another kind
        Assert.Throws<HeFormatException>(() => PartnerKeys.Import(bytes, fx.Model.Plan));
    }
}
