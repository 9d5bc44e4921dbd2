using Serverless.Model.Onnx;
using Serverless.Model.Training;

namespace Serverless.Client.Tests.Commands;

public sealed class ModelCommandsTests
{
    [Fact]
    public async Task Generate_train_export_round_trips_through_ONNX()
    {
        using var dir = new TempDir();
        var cohort = dir.Sub("cohort");
        var generate = await CliRunner.RunAsync("model", "generate", "--hospitals", "2", "--patients", "20", "--visits", "4", "--seed", "3", "--out", cohort);
        Assert.Equal(0, generate.ExitCode);
        var files = Directory.GetFiles(cohort, "*.csv");
        Assert.Equal(2, files.Length);

        var checkpointPath = dir.Sub("model.json");
        var train = await CliRunner.RunAsync("model", "train", cohort, "--out", checkpointPath, "--epochs", "2", "--hidden", "4", "--steps", "4", "--seed", "3");
        Assert.True(train.ExitCode == 0, train.Error);
        Assert.True(File.Exists(checkpointPath));
        var checkpoint = ModelCheckpoint.FromJson(File.ReadAllText(checkpointPath));
        Assert.Equal(4, checkpoint.Config.Steps);

        var onnxPath = dir.Sub("model.onnx");
        var export = await CliRunner.RunAsync("model", "export", "--model", checkpointPath, "--onnx", onnxPath);
        Assert.True(export.ExitCode == 0, export.Error);
        var imported = OnnxImporter.LoadFile(onnxPath);
        Assert.Equal(checkpoint.Config.Architecture, imported.Config.Architecture);
        Assert.Equal(checkpoint.Config.Features, imported.Config.Features);
        Assert.Equal(checkpoint.Parameters, imported.Parameters);
        Assert.Equal(checkpoint.Preprocessor.ToJson(), imported.Metadata["preprocessor"]);

        // Evaluation scores the model file in ONNX Runtime: the checkpoint (exported in memory) and the
        // exported file give the same report, and the report is about these patients.
        var fromCheckpoint = await CliRunner.RunAsync("model", "evaluate", "--model", checkpointPath, cohort);
        Assert.True(fromCheckpoint.ExitCode == 0, fromCheckpoint.Error);
        var fromFile = await CliRunner.RunAsync("model", "evaluate", "--onnx", onnxPath, cohort);
        Assert.True(fromFile.ExitCode == 0, fromFile.Error);
        Assert.Equal(fromCheckpoint.Out, fromFile.Out);
        Assert.Contains("AUROC", fromFile.Out, StringComparison.OrdinalIgnoreCase);

        // A damaged file is refused in one line, naming no weight or patient value.
        var damaged = dir.Sub("damaged.onnx");
        File.WriteAllBytes(damaged, File.ReadAllBytes(onnxPath)[..100]);
        var refused = await CliRunner.RunAsync("model", "evaluate", "--onnx", damaged, cohort);
        Assert.Equal(1, refused.ExitCode);
        Assert.StartsWith("error: ", Assert.Single(refused.ErrorLines));
    }

    [Fact]
    public async Task Train_on_a_missing_directory_fails_with_one_line()
    {
        using var dir = new TempDir();
        var run = await CliRunner.RunAsync("model", "train", dir.Sub("no-such-cohort"), "--out", dir.Sub("m.json"));
        Assert.Equal(1, run.ExitCode);
        var line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.Contains("no-such-cohort", line);
        Assert.False(File.Exists(dir.Sub("m.json")));
    }
}
