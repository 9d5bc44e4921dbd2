using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;
using Xunit.Abstractions;

namespace Serverless.Inference.Tests;

[Collection(InferenceCollection.Name)]
public sealed class EncryptedEvaluatorTests(InferenceFixture fx, ITestOutputHelper output)
{
    [Fact]
    public void Encrypted_scores_match_the_plaintext_model_within_1e_3()
    {
        var scores = ScoreDecryptor.Decrypt(fx.Result.ToBytes(), fx.Keys);
        var plain = fx.Model.PredictPlain(fx.Records);
        Assert.Equal(plain.Length, scores.Length);
        var max = 0.0;
        for (var i = 0; i < plain.Length; i++) max = Math.Max(max, Math.Abs(plain[i] - scores[i]));
        output.WriteLine($"records {plain.Length}, max |enc - plain| = {max:E3}, spread {plain.Max() - plain.Min()}");
        Assert.True(max < 1e-3, $"max error {max}");
        // Not a constant model: the scores spread, so agreement is not trivial.
        Assert.True(plain.Max() - plain.Min() > 0.05);
    }

    [Fact]
    public void Results_are_noise_flooded_and_a_flooded_result_decrypts_within_1e_3()
    {
        // Two evaluations of the same group differ only by their flooding noise (the circuit is
        // deterministic), so their result blobs differ; both decrypt to the plaintext scores within 1e-3.
        var evaluator = new EncryptedEvaluator(fx.Model, fx.Keys.EvaluationKeys);
        var group = fx.Batch.Groups[0];
        var a = evaluator.EvaluateGroup(group);
        Assert.True(evaluator.LastStageTimings!.ContainsKey("flood"));
        var b = evaluator.EvaluateGroup(group);
        Assert.NotEqual(a.ToBytes(), b.ToBytes());
        var plain = fx.Model.PredictPlain(fx.Records);
        foreach (var result in new[] { a, b })
        {
            var scores = ScoreDecryptor.Decrypt(EncryptedResult.Join(fx.Model.Plan, [result]).ToBytes(), fx.Keys);
            var max = 0.0;
            for (var i = 0; i < plain.Length; i++) max = Math.Max(max, Math.Abs(plain[i] - scores[i]));
            output.WriteLine($"flooded with b = {EncryptedEvaluator.FloodingBits(fx.Model.Plan.Context.ScaleAt(fx.Model.Plan.LevelsAvailable - fx.Model.Plan.LevelsConsumed))}: max |enc - plain| = {max:E3}");
            Assert.True(max < 1e-3, $"max error {max}");
        }
    }

    [Fact]
    public void Padded_records_score_like_the_plaintext_model_and_unlike_their_unpadded_selves()
    {
        // Record 0 has its last visit padded (see the fixture); the same record with that visit real scores differently.
        var padded = fx.Records.Subset([0, 5]);
        var values = padded.Values.ToArray();
        var mask = padded.Mask.ToArray();
        mask[padded.Steps - 1] = 1;
        var unpadded = new SequenceDataset(2, padded.Steps, padded.Features, 2, values, mask, padded.Labels.ToArray());
        var plainPadded = fx.Model.PredictPlain(padded);
        var plainUnpadded = fx.Model.PredictPlain(unpadded);
        Assert.NotEqual(plainPadded[0], plainUnpadded[0], 4);
        var scores = ScoreDecryptor.Decrypt(fx.Result.ToBytes(), fx.Keys);
        Assert.Equal(plainPadded[0], scores[0], 1e-3);
        Assert.Equal(plainPadded[1], scores[5], 1e-3);
        // A record with a single real visit (index 3) too.
        Assert.Equal(1f, fx.Records.Mask[3 * fx.Records.Steps]);
        Assert.Equal(0f, fx.Records.Mask[3 * fx.Records.Steps + 1]);
        Assert.Equal(fx.Model.PredictPlain(fx.Records.Subset([3]))[0], scores[3], 1e-3);
    }

    [Fact]
    public void The_tanh_cell_and_degree_2_convolution_variant_also_matches_its_plaintext_model()
    {
        var train = fx.Records; // training quality does not matter here, agreement does
        var options = fx.Options with { CellActivation = Serverless.Model.Nn.ActivationKind.PolyTanh3, ConvActivation = Serverless.Model.Nn.ActivationKind.PolyRelu2, Epochs = 3 };
        var config = HeModel.HeFriendlyConfig(train.Features, options);
        var parameters = HeModel.CreateParameters(4096, HeModel.LevelsRequired(config), allowInsecureForTests: true);
        var model = HeModel.Train(fx.Model.Checkpoint.Preprocessor, train, options, parameters: parameters);
        Assert.Equal(HeModel.LevelsRequired(fx.Model.Checkpoint.Config) + 2, model.Plan.LevelsConsumed);
        var records = fx.Records.Subset(Enumerable.Range(0, 40).ToArray()); // includes padded records
        var max = MaxErrorAgainstPlaintext(model, records);
        output.WriteLine($"tanh / degree-2 variant: max |enc - plain| = {max:E3}");
        Assert.True(max < 1e-3, $"max error {max}");
    }

    [Fact]
    public void A_four_visit_window_with_forget_gates_evaluated_a_level_lower_matches_its_plaintext_model()
    {
        // With 4 steps the forget gates have a level of slack in the cell tree (the circuit uses it); 3 steps do not.
        Assert.Equal(
            HeCircuit.CellTreeDepth(0, 4, 5, 4).Value,
            HeCircuit.CellTreeDepth(0, 4, 5, 5).Value);
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 1, PatientsPerHospital = 120, Visits = 6, Seed = 5 });
        var data = CohortDatasets.Build(cohort, steps: 4, testFraction: 0.3, seed: 2);
        var options = fx.Options with { Steps = 4, Epochs = 3 };
        var config = HeModel.HeFriendlyConfig(data.Preprocessor.Features, options);
        var model = HeModel.Train(data.Preprocessor, data.PooledTrain(), options,
            parameters: HeModel.CreateParameters(4096, HeModel.LevelsRequired(config), allowInsecureForTests: true));
        var records = data.PooledTest();
        var max = MaxErrorAgainstPlaintext(model, records);
        output.WriteLine($"4-visit window: {records.Count} records, {records.Mask.Count(m => m == 0)} padded visits, max |enc - plain| = {max:E3}");
        Assert.True(max < 1e-3, $"max error {max}");
    }

    /// <summary>Encrypts <paramref name="records"/> under fresh keys, evaluates them (the result must use every level), decrypts, and returns the largest |encrypted − plaintext| score.</summary>
    private static double MaxErrorAgainstPlaintext(HeModel model, SequenceDataset records)
    {
        using var keys = PartnerKeys.Generate(model.Plan);
        var result = new EncryptedEvaluator(model, keys.EvaluationKeys).Evaluate(BatchEncryptor.Encrypt(records, keys));
        Assert.Equal(0, result.Groups[0].Logits.Level);
        var scores = ScoreDecryptor.Decrypt(result.ToBytes(), keys);
        var plain = model.PredictPlain(records);
        var max = 0.0;
        for (var i = 0; i < plain.Length; i++) max = Math.Max(max, Math.Abs(plain[i] - scores[i]));
        return max;
    }

    [Fact]
    public void The_result_sits_exactly_LevelsConsumed_below_the_top()
    {
        var plan = fx.Model.Plan;
        Assert.Equal(HeModel.LevelsRequired(fx.Model.Checkpoint.Config), plan.LevelsConsumed);
        Assert.Equal(plan.LevelsConsumed, plan.LevelsAvailable); // the fixture's chain is exactly as deep as needed
        Assert.All(fx.Result.Groups, g => Assert.Equal(0, g.Logits.Level));
    }

    [Fact]
    public void With_spare_levels_the_circuit_still_uses_exactly_LevelsConsumed()
    {
        var deeper = HeModel.Create(fx.Model.Checkpoint, InferenceFixture.Parameters(InferenceFixture.Steps, extraLevels: 2));
        Assert.Equal(fx.Model.Plan.LevelsConsumed, deeper.Plan.LevelsConsumed);
        using var keys = PartnerKeys.Generate(deeper.Plan);
        var records = fx.Records.Subset([0, 1, 2, 3, 4, 5, 6, 7]);
        var result = new EncryptedEvaluator(deeper, keys.EvaluationKeys).Evaluate(BatchEncryptor.Encrypt(records, keys));
        Assert.Equal(2, result.Groups[0].Logits.Level);
        var scores = ScoreDecryptor.Decrypt(result.ToBytes(), keys);
        var plain = deeper.PredictPlain(records);
        for (var i = 0; i < plain.Length; i++) Assert.Equal(plain[i], scores[i], 1e-3);
    }

    [Fact]
    public void Too_few_levels_are_refused_when_the_plan_is_made()
    {
        var shallow = InferenceFixture.Parameters(InferenceFixture.Steps, extraLevels: -1);
        var e = Assert.Throws<ArgumentException>(() => HeModel.Create(fx.Model.Checkpoint, shallow));
        Assert.Contains($"needs {HeModel.LevelsRequired(fx.Model.Checkpoint.Config)} levels", e.Message);
    }

    [Fact]
    public void The_circuit_fails_clearly_on_inputs_with_too_few_levels()
    {
        // Bypasses the plan: the circuit itself checks the depth before spending any work.
        var shallow = InferenceFixture.Parameters(InferenceFixture.Steps, extraLevels: -1);
        var ctx = new CkksContext(shallow);
        var kg = new KeyGenerator(ctx);
        var ev = new Evaluator(ctx, kg.CreateRelinearizationKey());
        var inputs = new Ciphertext[fx.Model.Plan.CiphertextsPerGroup];
        var encryptor = new Encryptor(ctx, kg.SecretKey);
        var pt = new Encoder(ctx).Encode(new double[ctx.Slots]);
        for (var i = 0; i < inputs.Length; i++) inputs[i] = encryptor.Encrypt(pt);
        var circuit = new HeCircuit(fx.Model.Weights, ev, 1, CancellationToken.None);
        var e = Assert.Throws<InvalidOperationException>(() => circuit.Run(inputs));
        Assert.Contains("needs", e.Message);
    }

    [Fact]
    public void A_batch_under_other_keys_is_refused_by_the_evaluator()
    {
        var foreign = BatchEncryptor.Encrypt(fx.Records.Subset([0, 1, 2]), fx.OtherKeys);
        var server = new EncryptedEvaluator(fx.Model, fx.Keys.EvaluationKeys);
        var e = Assert.Throws<HeFormatException>(() => server.Evaluate(foreign));
        Assert.Contains("other keys", e.Message);
        Assert.Equal(InferenceErrors.WrongKeys, InferenceErrors.ReasonOf(e));
        Assert.Throws<HeFormatException>(() => server.EvaluateGroup(foreign.Groups[0]));
    }

    [Fact]
    public void A_result_for_another_partner_is_refused_by_the_decryptor()
    {
        var e = Assert.Throws<HeFormatException>(() => ScoreDecryptor.Decrypt(fx.Result.ToBytes(), fx.OtherKeys));
        Assert.Contains("other keys", e.Message);
    }

    [Fact]
    public void Fan_out_per_group_and_join_gives_the_same_scores_as_one_call()
    {
        // A plan with tiny groups is not possible (slots = N/2), so split a 2-group batch made of tiled records.
        var slots = fx.Model.Plan.SlotsPerCiphertext;
        var idx = Enumerable.Range(0, slots + 3).Select(i => i % fx.Records.Count).ToArray();
        var records = fx.Records.Subset(idx);
        var batch = BatchEncryptor.Encrypt(records, fx.Keys);
        Assert.Equal(2, batch.Groups.Count);
        Assert.Equal(3, batch.Groups[1].RecordCount);
        var server = new EncryptedEvaluator(fx.Model, fx.Keys.EvaluationKeys) { MaxDegreeOfParallelism = 1 };
        var plan = fx.Model.Plan;
        // Each "activity" gets its group as a separate blob and returns its result as a blob.
        var parts = batch.Groups.Reverse()
            .Select(g => CiphertextGroup.Read(g.ToBytes(), plan))
            .Select(g => EncryptedGroupResult.Read(server.EvaluateGroup(g).ToBytes(), plan))
            .ToArray();
        var joined = EncryptedResult.Join(plan, parts);
        var scores = ScoreDecryptor.Decrypt(joined.ToBytes(), fx.Keys);
        Assert.Equal(records.Count, scores.Length);
        var plain = fx.Model.PredictPlain(records);
        for (var i = 0; i < scores.Length; i += 97) Assert.Equal(plain[i], scores[i], 1e-3);
        Assert.Equal(plain[^1], scores[^1], 1e-3);
        Assert.Throws<ArgumentException>(() => EncryptedResult.Join(plan, [parts[0]]));          // group 0 missing
        Assert.Throws<ArgumentException>(() => EncryptedResult.Join(plan, [parts[1], parts[1]])); // duplicate
    }

    [Fact]
    public void The_server_side_run_constructs_no_secret_key()
    {
        var plan = fx.Model.Plan;
        var registration = fx.Keys.EvaluationKeys.ToBytes();
        var batchBytes = fx.BatchBytes;
        var before = SecretKey.Constructed;
        var beforeLoads = SecretKey.Deserialized;
        // Everything the server does: read keys and batch, evaluate, serialize the result.
        var keys = EvaluationKeys.Read(registration, plan);
        var batch = EncryptedBatch.Read(batchBytes, plan);
        var result = new EncryptedEvaluator(fx.Model, keys).Evaluate(batch).ToBytes();
        Assert.NotEmpty(result);
        Assert.Equal(before, SecretKey.Constructed);
        Assert.Equal(beforeLoads, SecretKey.Deserialized);
        // The hook does count: the partner side constructs one.
        using var partner = PartnerKeys.Generate(plan);
        Assert.Equal(before + 1, SecretKey.Constructed);
        using var imported = PartnerKeys.Import(partner.Export(), plan);
        Assert.Equal(before + 2, SecretKey.Constructed);
        Assert.Equal(beforeLoads + 1, SecretKey.Deserialized);
    }
}
