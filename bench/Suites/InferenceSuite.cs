using System.Diagnostics;
using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Bench.Suites;

/// <summary>
/// Encrypted inference with the HE-friendly CNN-LSTM at the default parameters (N = 16384, 12 levels,
/// 128-bit): trains the plaintext CNN-LSTM (8 visits, standard activations) and the HE-friendly
/// variant (4-visit window, polynomial activations, frozen recurrent matrix) on the same cohort and
/// split, then encrypts one full ciphertext group (8,192 records: the test set tiled), evaluates it
/// homomorphically, decrypts, and compares. Encrypted records/s are amortized over the packed slots
/// (8,192 / latency of one group through the whole model); the plaintext HE-friendly model's
/// records/s are measured in the same run on the same records.
/// </summary>
internal sealed class InferenceSuite : IBenchSuite
{
    public string Name => "inference";

    public Task<int> RunAsync(BenchOptions options)
    {
        var quick = options.Quick;
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
        var cohortOptions = new CohortOptions { Hospitals = 4, PatientsPerHospital = quick ? 600 : 2000, Visits = 8, Seed = 7 };
        var sw = Stopwatch.StartNew();
        var cohort = CohortGenerator.Generate(cohortOptions);
        var full = CohortDatasets.Build(cohort, steps: 8);
        var heOptions = new HeModelOptions();
        foreach (var arg in options.Args)
            if (arg == "--tanh-cell") heOptions = heOptions with { CellActivation = ActivationKind.PolyTanh3 };
        var window = CohortDatasets.Build(cohort, steps: heOptions.Steps);
        var test = window.PooledTest();
        if (!full.PooledTest().Labels.AsSpan().SequenceEqual(test.Labels))
            throw new InvalidOperationException("the 8-visit and 4-visit splits differ; the AUROC comparison would not be on the same records");
        Console.WriteLine($"cohort: {cohortOptions.Hospitals} hospitals, {full.PooledTrain().Count} train / {test.Count} test sequences, F={test.Features} ({sw.ElapsedMilliseconds} ms)");

        // The plaintext CNN-LSTM as the model suite trains it.
        sw.Restart();
        var plainModel = new CnnLstm(new ModelConfig { Features = test.Features, Steps = 8 });
        var plainRun = new Trainer(plainModel, new TrainerOptions { Epochs = quick ? 25 : 40, BatchSize = 32, LearningRate = 0.005, Seed = 1, ValidationFraction = 0.15, Patience = 5 })
            .Train(full.PooledTrain(), plainModel.InitializeParameters(1));
        var aurocPlain = Metrics.Evaluate(plainModel, plainRun.Parameters, full.PooledTest()).Auroc;
        Console.WriteLine($"plaintext CNN-LSTM (T=8, ReLU/sigmoid/tanh, {plainModel.ParameterCount} params): AUROC {aurocPlain:F4} ({sw.ElapsedMilliseconds} ms)");

        sw.Restart();
        var he = HeModel.Train(window.Preprocessor, window.PooledTrain(), heOptions);
        var heProbabilities = he.PredictPlain(test);
        var aurocHe = Metrics.Auroc(heProbabilities, test.Labels);
        Console.WriteLine($"HE-friendly CNN-LSTM (T={heOptions.Steps}, C={heOptions.ConvChannels}, H={heOptions.LstmHidden}, conv {heOptions.ConvActivation}, gates PolySigmoid3, cell {heOptions.CellActivation}, R=0, {he.Checkpoint.Parameters.Length} params): AUROC {aurocHe:F4} ({sw.ElapsedMilliseconds} ms)");
        var plan = he.Plan;
        Console.WriteLine(plan);

        sw.Restart();
        using var keys = PartnerKeys.Generate(plan);
        var keyBytes = keys.EvaluationKeys.ToBytes();
        Console.WriteLine($"partner keys: {sw.ElapsedMilliseconds} ms; evaluation keys {keyBytes.Length / 1e6:F1} MB");

        // One full group: the test set tiled over every slot.
        var slots = plan.SlotsPerCiphertext;
        var idx = new int[slots];
        for (var i = 0; i < slots; i++) idx[i] = i % test.Count;
        var records = test.Subset(idx);
        sw.Restart();
        var batch = BatchEncryptor.Encrypt(records, keys);
        var encryptMs = sw.Elapsed.TotalMilliseconds;
        var blob = batch.ToBytes();
        // Plaintext size as the seed paper counts it: the float32 feature values encrypted (records × visits × features × 4 B).
        var plainBytes = (double)slots * plan.Steps * plan.Features * 4;
        var encryptKbPerS = plainBytes / 1024 / (encryptMs / 1000);
        Console.WriteLine($"encrypt {slots} records ({plainBytes / 1024:F0} KB of float32 features): {encryptMs:F0} ms ({encryptKbPerS:F0} KB/s: 100 KB in {100 / encryptKbPerS:F3} s), batch blob {blob.Length / 1e6:F1} MB ({blob.Length / (double)slots:F0} B/record)");

        // Server side: read back (validation included), evaluate; median over runs.
        var serverBatch = EncryptedBatch.Read(blob, plan);
        var evaluator = new EncryptedEvaluator(he, EvaluationKeys.Read(keyBytes, plan));
        EncryptedResult? result = null;
        var runs = quick ? 1 : 3;
        var latencies = new double[runs];
        var cpu = new double[runs];
        var floods = new double[runs];
        var process = System.Diagnostics.Process.GetCurrentProcess();
        for (var r = 0; r < runs; r++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            var gc0 = GC.CollectionCount(2);
            sw.Restart();
            result = evaluator.Evaluate(serverBatch);
            latencies[r] = sw.Elapsed.TotalMilliseconds;
            floods[r] = evaluator.LastStageTimings!.GetValueOrDefault("flood");
            process.Refresh();
            cpu[r] = (process.TotalProcessorTime - cpu0).TotalMilliseconds;
            Console.WriteLine($"evaluate one group ({slots} records): {latencies[r]:F0} ms wall, {cpu[r]:F0} ms CPU, {GC.CollectionCount(2) - gc0} gen2 GCs: " +
                string.Join(", ", evaluator.LastStageTimings!.Select(kv => $"{kv.Key} {kv.Value:F0}")));
        }
        var latency = Measure.Median(latencies);
        var floodMs = Measure.Median(floods);
        var cpuMs = Measure.Median(cpu);
        var resultBlob = result!.ToBytes();

        sw.Restart();
        var scores = ScoreDecryptor.Decrypt(resultBlob, keys);
        var decryptMs = sw.Elapsed.TotalMilliseconds;
        var reference = he.PredictPlain(records);
        var maxError = 0.0;
        for (var i = 0; i < scores.Length; i++) maxError = Math.Max(maxError, Math.Abs(scores[i] - reference[i]));
        var aurocDecrypted = Metrics.Auroc(scores.AsSpan(0, test.Count), test.Labels);
        Console.WriteLine($"decrypt: {decryptMs:F0} ms, result blob {resultBlob.Length / 1e3:F0} KB; max |decrypted - plaintext| = {maxError:E2}; AUROC decrypted {aurocDecrypted:F4}");

        // Flooding margin (docs/decisions 0021-result-flooding-budget): the circuit's noise difference δ
        // between two encryptions of the same records, unflooded, at this plan's parameters: the E of the
        // flooding lemma. flood_margin_bits = b − log2 max|δ|, flood_lemma_bits = b − log2(N·max|δ|)
        // (negative: the lemma proves nothing). Costs one more encryption and evaluation.
        var margin = EncryptedEvaluator.MeasureFloodingMargin(he, keys, serverBatch, BatchEncryptor.Encrypt(records, keys));
        var (floodBits, noiseMax, floodMargin, floodLemma) = (margin.FloodingBits, margin.NoiseMax, margin.MarginBits, margin.LemmaBits);
        Console.WriteLine($"flooding: b = {floodBits}, circuit noise difference max |δ| = {noiseMax:F0} (2^{Math.Log2(noiseMax):F1}); margin 2^{floodMargin:F1}, flooding lemma {floodLemma:F1} statistical bits");

        var plainMicros = Measure.MedianMicroseconds(() => he.PredictPlain(records), quick ? 5 : 20);
        var plainRate = slots / (plainMicros / 1e6);

        Console.WriteLine(Measure.Result(Name,
        [
            ("enc_records_per_s", slots / (latency / 1000)),
            ("batch_latency_ms", latency),
            ("flood_ms", floodMs),
            ("flood_bits", floodBits),
            ("flood_margin_bits", floodMargin),
            ("flood_lemma_bits", floodLemma),
            ("batch_cpu_ms", cpuMs),
            ("enc_records_per_cpu_s", slots / (cpuMs / 1000)),
            ("plain_records_per_s", plainRate),
            ("max_abs_error", maxError),
            ("auroc_he", aurocHe),
            ("auroc_he_decrypted", aurocDecrypted),
            ("auroc_plain", aurocPlain),
            ("auroc_gap_points", (aurocPlain - aurocHe) * 100),
            ("encrypt_ms", encryptMs),
            ("encrypt_plain_kb_per_s", encryptKbPerS),
            ("decrypt_ms", decryptMs),
            ("batch_bytes_per_record", blob.Length / (double)slots),
            ("eval_key_mb", keyBytes.Length / 1e6),
            ("levels", plan.LevelsConsumed),
            ("slots", slots),
        ]));
        return Task.FromResult(0);
    }
}
