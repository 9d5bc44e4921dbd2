using Serverless.Model.Data;
using Serverless.Model.Evaluation;
using Serverless.Model.Import;
using Serverless.Model.Nn;
using Serverless.Model.Onnx;
using Serverless.Model.Preprocessing;
using Serverless.Model.Training;

namespace Serverless.Client.Commands;

/// <summary><c>model generate | import | train | evaluate | export | attack</c>.</summary>
internal static class ModelCommands
{
    private static readonly string[] Formats = ["csv", "kaggle", "fhir"];

    public static Command Create()
    {
        var model = new Command("model", "Generate, import, train, evaluate and export the CNN-LSTM");
        model.Subcommands.Add(Generate());
        model.Subcommands.Add(Import());
        model.Subcommands.Add(Train());
        model.Subcommands.Add(Evaluate());
        model.Subcommands.Add(Export());
        model.Subcommands.Add(Attack());
        return model;
    }

    private static Option<string> FormatOption() => new Option<string>("--format") { Description = "Input format: csv (cohort CSV), kaggle (healthcare-dataset CSV) or fhir (R4 JSON bundles)", DefaultValueFactory = _ => "csv" }.AcceptOnlyFromAmong(Formats);

    private static Option<FileInfo?> KeyFileOption() => new("--key-file")
    {
        Description = "File with the pseudonymization key (at least 32 bytes, raw or hex); default: env SERVERLESS_PSEUDONYM_KEY (hex), else a one-time random key",
    };

    private static Command Generate()
    {
        var hospitals = new Option<int>("--hospitals") { Description = "Number of hospitals", DefaultValueFactory = _ => 4 };
        var patients = new Option<int>("--patients") { Description = "Mean patients per hospital", DefaultValueFactory = _ => 500 };
        var visits = new Option<int>("--visits") { Description = "Maximum visits per patient", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 1 };
        var heterogeneity = new Option<double>("--heterogeneity") { Description = "0 = IID hospitals, 1 = default non-IID spread", DefaultValueFactory = _ => 1.0 };
        var output = new Option<DirectoryInfo>("--out") { Description = "Output directory", Required = true };
        var format = new Option<string>("--format") { Description = "csv (one row per visit) or fhir (one bundle per hospital)", DefaultValueFactory = _ => "csv" }.AcceptOnlyFromAmong("csv", "fhir");
        var cmd = new Command("generate", "Write a synthetic multi-hospital cohort, one file per hospital") { hospitals, patients, visits, seed, heterogeneity, output, format };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var options = new CohortOptions
            {
                Hospitals = r.GetValue(hospitals), PatientsPerHospital = r.GetValue(patients), Visits = r.GetValue(visits),
                Seed = r.GetValue(seed), Heterogeneity = r.GetValue(heterogeneity),
            };
            var cohort = CohortGenerator.Generate(options);
            var dir = r.GetValue(output)!;
            dir.Create();
            var fhir = r.GetValue(format) == "fhir";
            foreach (var h in cohort.Hospitals)
            {
                var path = Path.Combine(dir.FullName, h.Hospital + (fhir ? ".json" : ".csv"));
                WriteAtomically(path, stream =>
                {
                    if (fhir) FhirBundleWriter.Write(h.Patients, stream);
                    else
                    {
                        using var w = new StreamWriter(stream, leaveOpen: true);
                        CohortCsv.Write(h.Patients, w);
                    }
                });
                Console.WriteLine($"{path}: {h.Patients.Count} patients, {h.Patients.Sum(p => p.Visits.Count)} visits, prevalence {h.Patients.Average(p => p.Label).ToString("F3", CultureInfo.InvariantCulture)}");
            }
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Import()
    {
        var format = FormatOption();
        var keyFile = KeyFileOption();
        var path = new Argument<string[]>("path") { Description = "Files or directories to import", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("import", "Validate input files and report every problem with file, row and column") { format, keyFile, path };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var results = Load(r.GetValue(format)!, r.GetValue(path)!, r.GetValue(keyFile));
            var errors = results.SelectMany(x => x.Errors).ToList();
            foreach (var e in errors) Console.Error.WriteLine(e.ToString());
            var patients = results.SelectMany(x => x.Cohort.Patients).ToList();
            var schema = results[0].Cohort.Schema;
            Console.WriteLine($"imported {patients.Count} patients ({patients.Sum(p => p.Visits.Count)} visits) from {results.Count} file(s); rejected {results.Sum(x => x.RejectedPatients.Count)} patient(s) with {errors.Count} error(s)");
            for (var c = 0; c < schema.Classes; c++)
                Console.WriteLine($"  {schema.ClassNames[c]}: {patients.Count(p => p.Label == c)}");
            return errors.Count == 0 ? Cli.Ok : Cli.Failed;
        }));
        return cmd;
    }

    private static Command Train()
    {
        var format = FormatOption();
        var keyFile = KeyFileOption();
        var data = new Argument<string[]>("path") { Description = "Training files or directories", Arity = ArgumentArity.OneOrMore };
        var output = new Option<FileInfo>("--out") { Description = "Checkpoint file to write (JSON)", Required = true };
        var arch = new Option<string>("--arch") { Description = "cnnlstm, cnn (CNN-only baseline) or logreg (last-visit logistic regression)", DefaultValueFactory = _ => "cnnlstm" }.AcceptOnlyFromAmong("cnnlstm", "cnn", "logreg");
        var steps = new Option<int>("--steps") { Description = "Visits per sequence (window)", DefaultValueFactory = _ => 8 };
        var hidden = new Option<int>("--hidden") { Description = "LSTM hidden size and conv channels", DefaultValueFactory = _ => 16 };
        var epochs = new Option<int>("--epochs") { Description = "Maximum epochs", DefaultValueFactory = _ => 25 };
        var lr = new Option<double>("--lr") { Description = "Learning rate", DefaultValueFactory = _ => 0.005 };
        var seed = new Option<int>("--seed") { Description = "Seed of the split, initialization and shuffling", DefaultValueFactory = _ => 1 };
        var poly = new Option<bool>("--poly") { Description = "Polynomial activations (the HE-friendly variant)" };
        var allow = new Option<bool>("--allow-errors") { Description = "Train on the valid patients even if some were rejected" };
        var cmd = new Command("train", "Import, preprocess (statistics from sums), train with early stopping, write a checkpoint")
            { format, keyFile, data, output, arch, steps, hidden, epochs, lr, seed, poly, allow };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var cohort = LoadCohort(r.GetValue(format)!, r.GetValue(data)!, r.GetValue(keyFile), r.GetValue(allow));
            var s = r.GetValue(seed);
            var patients = cohort.Patients.ToArray();
            new Random(s).Shuffle(patients);
            var cut = (int)Math.Round(patients.Length * 0.25);
            var test = patients[..cut];
            var train = patients[cut..];
            if (train.Length < 10) throw new InvalidDataException($"only {train.Length} training patients; need at least 10");
            var pre = Preprocessor.Fit(cohort.Schema, train, r.GetValue(steps));
            var trainSet = pre.Transform(train);
            var testSet = pre.Transform(test);
            var config = new ModelConfig
            {
                Features = pre.Features, Steps = pre.Steps, ConvChannels = r.GetValue(hidden), LstmHidden = r.GetValue(hidden),
                Architecture = r.GetValue(arch) switch { "cnn" => ArchitectureKind.CnnOnly, "logreg" => ArchitectureKind.LastVisitLogistic, _ => ArchitectureKind.CnnLstm },
                Task = cohort.Schema.Classes == 2 ? TaskKind.Binary : TaskKind.Multiclass,
                Classes = cohort.Schema.Classes,
            };
            if (r.GetValue(poly)) config = config.WithPolynomialActivations();
            var model = new CnnLstm(config);
            var isPoly = r.GetValue(poly);
            // Polynomials leave their fit interval fast: the HE variant trains from smaller weights, with a
            // smaller default step and tighter clipping (see docs/model.md).
            var rate = isPoly && r.GetResult(lr) is null ? 0.0005 : r.GetValue(lr);
            var options = new TrainerOptions
            {
                Epochs = r.GetValue(epochs), LearningRate = rate, Seed = s, ValidationFraction = 0.15, Patience = 5,
                GradientClipNorm = isPoly ? 1 : 5,
            };
            var init = model.InitializeParameters(s);
            if (isPoly) for (var i = 0; i < init.Length; i++) init[i] *= 0.5f;
            var run = new Trainer(model, options).Train(trainSet, init);
            foreach (var e in run.Epochs)
                Console.WriteLine($"epoch {e.Epoch,3}: train loss {e.TrainLoss:F4}" + (e.ValidationLoss is { } v ? $"  validation loss {v:F4}" : ""));
            var checkpoint = new ModelCheckpoint(config, pre, run.Parameters).Validated();
            WriteAtomically(r.GetValue(output)!.FullName, stream =>
            {
                using var w = new StreamWriter(stream, leaveOpen: true);
                w.Write(checkpoint.ToJson());
            });
            Console.WriteLine($"best epoch {run.BestEpoch}; {train.Length} training / {test.Length} held-out patients");
            if (testSet.Count > 0) Print(ScoreInOnnxRuntime(OnnxExporter.Export(checkpoint.Config, checkpoint.Parameters), testSet), cohort.Schema);
            Console.WriteLine($"wrote {r.GetValue(output)!.FullName}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Evaluate()
    {
        var format = FormatOption();
        var keyFile = KeyFileOption();
        var checkpoint = new Option<FileInfo?>("--model") { Description = "Checkpoint written by 'model train' (exported in memory, then scored in ONNX Runtime)" };
        var onnx = new Option<FileInfo?>("--onnx") { Description = "ONNX file written by 'model export' or downloaded from a federation (scored as it is, in ONNX Runtime)" };
        var data = new Argument<string[]>("path") { Description = "Files or directories to evaluate on", Arity = ArgumentArity.OneOrMore };
        var allow = new Option<bool>("--allow-errors") { Description = "Evaluate the valid patients even if some were rejected" };
        var cmd = new Command("evaluate", "Accuracy, AUROC, AUPRC, log loss, calibration and confusion matrix of a model, scored in ONNX Runtime") { format, keyFile, checkpoint, onnx, data, allow };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var (bytes, preprocessor) = (r.GetValue(checkpoint), r.GetValue(onnx)) switch
            {
                ({ } c, null) => FromCheckpoint(ModelCheckpoint.FromJson(File.ReadAllText(c.FullName))),
                (null, { } o) => FromOnnxFile(o.FullName),
                _ => throw new ArgumentException("give exactly one of --model and --onnx"),
            };
            var cohort = LoadCohort(r.GetValue(format)!, r.GetValue(data)!, r.GetValue(keyFile), r.GetValue(allow));
            if (cohort.Schema.VisitFeatures.Count != preprocessor.Schema.VisitFeatures.Count || cohort.Schema.Classes != preprocessor.Schema.Classes)
                throw new InvalidDataException("the data's schema does not match the model's (wrong --format?)");
            Print(ScoreInOnnxRuntime(bytes, preprocessor.Transform(cohort.Patients)), cohort.Schema);
            return Cli.Ok;
        }));
        return cmd;

        static (byte[], Preprocessor) FromCheckpoint(ModelCheckpoint c) =>
            (OnnxExporter.Export(c.Config, c.Parameters, ExportMetadata(c)), c.Preprocessor);

        static (byte[], Preprocessor) FromOnnxFile(string path)
        {
            var bytes = File.ReadAllBytes(path);
            var model = OnnxImporter.Load(bytes);
            if (!model.Metadata.TryGetValue(PreprocessorMetadataKey, out var json))
                throw new InvalidDataException($"{Path.GetFileName(path)} carries no preprocessor (export it with 'model export')");
            return (bytes, Preprocessor.FromJson(json));
        }
    }

    private const string PreprocessorMetadataKey = "preprocessor";

    /// <summary>Metrics of a model file scored in ONNX Runtime: the CLI judges the file a federation would serve.</summary>
    private static EvaluationReport ScoreInOnnxRuntime(byte[] onnx, SequenceDataset data)
    {
        using var scorer = OnnxScorer.Load(onnx);
        if (scorer.Config.Classes != data.Classes)
            throw new InvalidDataException($"the model predicts {scorer.Config.Classes} classes, the data has {data.Classes}");
        return Metrics.FromProbabilities(scorer.Predict(data), data.Labels, data.Classes);
    }

    private static Dictionary<string, string> ExportMetadata(ModelCheckpoint c) => new() { [PreprocessorMetadataKey] = c.Preprocessor.ToJson() };

    private static Command Export()
    {
        var checkpoint = new Option<FileInfo>("--model") { Description = "Checkpoint written by 'model train'", Required = true };
        var onnx = new Option<FileInfo>("--onnx") { Description = "ONNX file to write (opset 17; inputs features [batch, T, F] and mask [batch, T])", Required = true };
        var cmd = new Command("export", "Export a checkpoint as ONNX") { checkpoint, onnx };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var ckpt = ModelCheckpoint.FromJson(File.ReadAllText(r.GetValue(checkpoint)!.FullName));
            var path = r.GetValue(onnx)!.FullName;
            WriteAtomically(path, stream => OnnxExporter.Export(ckpt.Config, ckpt.Parameters, stream, ExportMetadata(ckpt)));
            var check = OnnxImporter.LoadFile(path); // read back: the file must import cleanly
            Console.WriteLine($"wrote {path}: {check.Config.Architecture}, {check.Parameters.Length} parameters, input [batch, {check.Config.Steps}, {check.Config.Features}]");
            return Cli.Ok;
        }));
        return cmd;
    }

    /// <summary>
    /// <c>model attack</c>: trains a federation in process on generated cohorts (without DP, or with patient-level
    /// DP-SGD at --epsilon per patient) and runs the loss-threshold and shadow-model membership attacks on it.
    /// </summary>
    private static Command Attack()
    {
        var dp = new Option<string>("--dp") { Description = "off, or patient (DP-SGD in every hospital at --epsilon per patient)", DefaultValueFactory = _ => "off" }.AcceptOnlyFromAmong("off", "patient");
        var epsilon = new Option<double>("--epsilon") { Description = "Per-patient epsilon of DP-SGD over all rounds", DefaultValueFactory = _ => 8 };
        var delta = new Option<double>("--delta") { Description = "Delta of the per-patient guarantee (below 1 / records)", DefaultValueFactory = _ => 1e-5 };
        var hospitals = new Option<int>("--hospitals") { Description = "Hospitals in the attacked federation", DefaultValueFactory = _ => 8 };
        var patients = new Option<int>("--patients") { Description = "Patients generated per hospital (40 % train, the rest held out: non-members)", DefaultValueFactory = _ => 120 };
        var rounds = new Option<int>("--rounds") { Description = "Federated rounds", DefaultValueFactory = _ => 10 };
        var epochs = new Option<int>("--local-epochs") { Description = "Local epochs per round (many epochs on small cohorts: the overfit setting)", DefaultValueFactory = _ => 10 };
        var clip = new Option<double>("--clip") { Description = "DP-SGD per-record gradient bound C", DefaultValueFactory = _ => 1.0 };
        var batch = new Option<int>("--batch") { Description = "Batch size (DP-SGD: the expected Poisson batch)", DefaultValueFactory = _ => 16 };
        var shadows = new Option<int>("--shadows") { Description = "Shadow federations, each on its own generated cohort", DefaultValueFactory = _ => 2 };
        var trials = new Option<int>("--trials") { Description = "Independent targets (cohort seeds) to attack", DefaultValueFactory = _ => 1 };
        var seed = new Option<int>("--seed") { Description = "Cohort seed of the first trial", DefaultValueFactory = _ => 1 };
        var cmd = new Command("attack", "Measure membership-inference leakage (loss-threshold and shadow-model attacks) of a federated model trained in process on generated cohorts")
            { dp, epsilon, delta, hospitals, patients, rounds, epochs, clip, batch, shadows, trials, seed };
        cmd.SetAction(r => Cli.Guard(() =>
        {
            var inv = CultureInfo.InvariantCulture;
            double? eps = r.GetValue(dp) == "patient" ? r.GetValue(epsilon) : null;
            if (eps is { } e && !(e > 0 && double.IsFinite(e))) throw new ArgumentException("--epsilon must be positive");
            if (r.GetValue(hospitals) is < 2 or > 64) throw new ArgumentException("--hospitals must be between 2 and 64");
            if (r.GetValue(patients) is < 20 or > 100_000) throw new ArgumentException("--patients must be between 20 and 100000");
            if (r.GetValue(rounds) is < 1 or > 200 || r.GetValue(epochs) is < 1 or > 200) throw new ArgumentException("--rounds and --local-epochs must be between 1 and 200");
            if (r.GetValue(shadows) is < 1 or > 16 || r.GetValue(trials) is < 1 or > 100) throw new ArgumentException("--shadows must be 1..16 and --trials 1..100");
            if (r.GetValue(batch) is < 1 or > 4096) throw new ArgumentException("--batch must be between 1 and 4096");
            var experiment = new Serverless.Federation.Attacks.MembershipInferenceExperiment(new Serverless.Federation.Attacks.MembershipExperimentOptions
            {
                Hospitals = r.GetValue(hospitals), PatientsPerHospital = r.GetValue(patients), Rounds = r.GetValue(rounds), LocalEpochs = r.GetValue(epochs),
                BatchSize = r.GetValue(batch), ExpectedBatchSize = r.GetValue(batch), ClipNorm = r.GetValue(clip), Delta = r.GetValue(delta),
                Shadows = r.GetValue(shadows), Seed = r.GetValue(seed),
            });
            Console.WriteLine("trial  sigma   test AUROC  train AUROC  loss AUC  loss adv  shadow AUC  shadow adv  members");
            var results = new List<Serverless.Federation.Attacks.MembershipTrial>();
            for (var t = 0; t < r.GetValue(trials); t++)
            {
                var x = experiment.Run(t, eps);
                results.Add(x);
                Console.WriteLine(string.Create(inv, $"{t,5}  {x.NoiseMultiplier,5:F2}  {x.TestAuroc,10:F4}  {x.TrainAuroc,11:F4}  {x.Loss.Auc,8:F4}  {x.Loss.Advantage,8:F3}  {x.ShadowModel.Auc,10:F4}  {x.ShadowModel.Advantage,10:F3}  {x.Members,7}"));
            }
            Console.WriteLine(string.Create(inv,
                $"ATTACK dp={(eps is null ? "off" : "patient")} epsilon={(eps is { } v ? v.ToString(inv) : "-")} loss_advantage={results.Average(x => x.Loss.Advantage):F4} loss_auc={results.Average(x => x.Loss.Auc):F4} " +
                $"shadow_advantage={results.Average(x => x.ShadowModel.Advantage):F4} shadow_auc={results.Average(x => x.ShadowModel.Auc):F4} test_auroc={results.Average(x => x.TestAuroc):F4}"));
            return Cli.Ok;
        }));
        return cmd;
    }

    private static void Print(EvaluationReport r, FeatureSchema schema)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"records {r.Count}  accuracy {r.Accuracy:F4}  AUROC {r.Auroc:F4}  AUPRC {r.Auprc:F4}  log loss {r.LogLoss:F4}  ECE {r.ExpectedCalibrationError:F4}"));
        Console.WriteLine("confusion matrix (rows actual, columns predicted): " + string.Join(", ", schema.ClassNames));
        for (var a = 0; a < r.Classes; a++)
            Console.WriteLine($"  {schema.ClassNames[a],-14}" + string.Concat(Enumerable.Range(0, r.Classes).Select(p => $"{r.ConfusionMatrix[a * r.Classes + p],8}")));
    }

    private static PatientCohort LoadCohort(string format, string[] paths, FileInfo? keyFile, bool allowErrors)
    {
        var results = Load(format, paths, keyFile);
        var errors = results.SelectMany(x => x.Errors).ToList();
        if (errors.Count > 0 && !allowErrors)
            throw new InvalidDataException($"{errors.Count} import error(s), first: {errors[0]} (run 'model import' for all, or pass --allow-errors)");
        foreach (var e in errors) Console.Error.WriteLine($"warning: {e}");
        var patients = results.SelectMany(x => x.Cohort.Patients).ToList();
        if (patients.Count == 0) throw new InvalidDataException("no valid patients in the input");
        return new PatientCohort(results[0].Cohort.Schema, patients);
    }

    private static List<ImportResult> Load(string format, string[] paths, FileInfo? keyFile)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p))
                files.AddRange(Directory.GetFiles(p, format == "fhir" ? "*.json" : "*.csv").Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new FileNotFoundException($"no such file or directory: {p}");
        }
        if (files.Count == 0) throw new InvalidDataException($"no {(format == "fhir" ? "*.json" : "*.csv")} files in {string.Join(", ", paths)}");
        using var pseudonymizer = format == "csv" ? null : new Pseudonymizer(ReadKey(keyFile));
        return files.Select(f => format switch
        {
            "kaggle" => KaggleHealthcareImporter.Read(f, pseudonymizer!),
            "fhir" => FhirBundleImporter.Read(f, pseudonymizer!),
            _ => CohortCsv.Read(f),
        }).ToList();
    }

    /// <summary>The pseudonymization key: --key-file (raw or hex), else SERVERLESS_PSEUDONYM_KEY (hex), else random. Never printed.</summary>
    private static byte[] ReadKey(FileInfo? keyFile)
    {
        if (keyFile is not null)
        {
            var raw = File.ReadAllBytes(keyFile.FullName);
            var text = System.Text.Encoding.ASCII.GetString(raw).Trim();
            if (text.Length >= 64 && text.All(Uri.IsHexDigit)) return Convert.FromHexString(text);
            return raw;
        }
        if (Environment.GetEnvironmentVariable("SERVERLESS_PSEUDONYM_KEY") is { Length: > 0 } hex)
        {
            try
            {
                return Convert.FromHexString(hex.Trim());
            }
            catch (FormatException)
            {
                throw new ArgumentException("SERVERLESS_PSEUDONYM_KEY is not hex");
            }
        }
        Console.Error.WriteLine("note: no pseudonymization key given; using a one-time random key (pseudonyms will not match other runs)");
        return RandomNumberGenerator.GetBytes(Pseudonymizer.MinimumKeyBytes);
    }

    /// <summary>Writes to a temporary file and renames it over the target, so a crash never leaves a half-written file.</summary>
    private static void WriteAtomically(string path, Action<Stream> write)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = full + $".tmp-{Environment.ProcessId}";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
