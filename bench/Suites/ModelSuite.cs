using System.Diagnostics;
using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;
using Serverless.Model.Training;

namespace Serverless.Bench.Suites;

/// <summary>
/// <c>model</c>: CNN-LSTM training and inference throughput of the C# runtime, inference throughput of the
/// real ONNX Runtime (Microsoft.ML.OnnxRuntime in process, one intra-op thread like the C# runtime) on the
/// exported file, and test AUROC of the CNN-LSTM and both baselines on one generated cohort.
/// </summary>
internal sealed class ModelSuite : IBenchSuite
{
    public string Name => "model";

    public Task<int> RunAsync(BenchOptions options)
    {
        var quick = options.Quick;
        var cohortOptions = new CohortOptions { Hospitals = 4, PatientsPerHospital = quick ? 600 : 2000, Visits = 8, Seed = 7 };
        var sw = Stopwatch.StartNew();
        var data = CohortDatasets.Build(CohortGenerator.Generate(cohortOptions), steps: 8);
        var train = data.PooledTrain();
        var test = data.PooledTest();
        Console.WriteLine($"cohort: {cohortOptions.Hospitals} hospitals, {train.Count} train / {test.Count} test sequences, T={train.Steps}, F={train.Features} ({sw.ElapsedMilliseconds} ms)");

        var trainerOptions = new TrainerOptions { Epochs = quick ? 25 : 40, BatchSize = 32, LearningRate = 0.005, Seed = 1, ValidationFraction = 0.15, Patience = 5 };
        var auroc = new Dictionary<ArchitectureKind, EvaluationReport>();
        var trained = new Dictionary<ArchitectureKind, (CnnLstm Model, float[] Parameters)>();
        Console.WriteLine("model               params  epochs  best  AUROC   AUPRC   accuracy  log loss  ECE");
        foreach (var arch in new[] { ArchitectureKind.CnnLstm, ArchitectureKind.CnnOnly, ArchitectureKind.LastVisitLogistic })
        {
            var model = new CnnLstm(new ModelConfig { Features = train.Features, Steps = train.Steps, Architecture = arch });
            var run = new Trainer(model, trainerOptions).Train(train, model.InitializeParameters(1));
            var report = Metrics.Evaluate(model, run.Parameters, test);
            auroc[arch] = report;
            trained[arch] = (model, run.Parameters);
            Console.WriteLine($"{arch,-18} {model.ParameterCount,7} {run.Epochs.Count,7} {run.BestEpoch,5}  {report.Auroc:F4}  {report.Auprc:F4}  {report.Accuracy,8:F4}  {report.LogLoss,8:F4}  {report.ExpectedCalibrationError:F4}");
        }

        // Training throughput: fixed epochs, no early stopping, no validation passes.
        var (lstm, parameters) = trained[ArchitectureKind.CnnLstm];
        var throughputOptions = trainerOptions with { Epochs = quick ? 2 : 5, Patience = 0, ValidationFraction = 0 };
        var trainer = new Trainer(lstm, throughputOptions);
        trainer.Train(train, lstm.InitializeParameters(2)); // warm-up (JIT, tiered compilation)
        sw.Restart();
        var measured = trainer.Train(train, lstm.InitializeParameters(2));
        var trainRate = measured.SamplesSeen / sw.Elapsed.TotalSeconds;
        Console.WriteLine($"C# training: {measured.SamplesSeen} samples in {sw.Elapsed.TotalSeconds:F2} s (batch 32, Adam, single thread)");

        // Inference on 1,000+ records, C# then ONNX Runtime on the exported file.
        var records = test.Count >= 1000 ? test : SequenceDataset.Concat([test, train]).Subset(Enumerable.Range(0, 1000).ToArray());
        var output = new float[records.Count * lstm.Config.Outputs];
        var iterations = quick ? 10 : 30;
        var micros = Measure.MedianMicroseconds(() => lstm.Predict(parameters, records, output), iterations);
        var inferRate = records.Count / (micros / 1e6);
        Console.WriteLine($"C# inference: {records.Count} records, median {micros / 1000:F2} ms per pass");

        // The same records through Microsoft's ONNX Runtime, in process, on the exported file: one intra-op
        // thread like the C# pass, OrtValues over our arrays, timed the same way in the same run.
        using var scorer = OnnxScorer.Load(OnnxExporter.Export(lstm.Config, parameters), new OnnxScorerOptions { IntraOpThreads = 1 });
        var ortOutput = new float[output.Length];
        scorer.Predict(records, ortOutput); // warm-up
        var ortMicros = Measure.MedianMicroseconds(() => scorer.Predict(records, ortOutput), iterations);
        var ortRate = records.Count / (ortMicros / 1e6);
        var maxDiff = 0.0;
        for (var i = 0; i < output.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(output[i] - ortOutput[i]));
        Console.WriteLine($"ONNX Runtime (in process, 1 thread): {records.Count} records, median {ortMicros / 1000:F2} ms per pass; max |C# - ORT| = {maxDiff:E2}; C#/ORT speed {inferRate / ortRate:F2}");

        Console.WriteLine(Measure.Result(Name,
        [
            ("train_samples_per_s", trainRate),
            ("infer_records_per_s", inferRate),
            ("ort_infer_records_per_s", ortRate),
            ("auroc_cnnlstm", auroc[ArchitectureKind.CnnLstm].Auroc),
            ("auroc_cnn", auroc[ArchitectureKind.CnnOnly].Auroc),
            ("auroc_logreg", auroc[ArchitectureKind.LastVisitLogistic].Auroc),
            ("ort_max_abs_diff", maxDiff),
            ("csharp_over_ort_speed", inferRate / ortRate),
            ("train_sequences", train.Count),
            ("params_cnnlstm", lstm.ParameterCount),
        ]));
        return Task.FromResult(0);
    }
}
