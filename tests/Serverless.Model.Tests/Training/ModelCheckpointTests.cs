using Serverless.Model.Nn;
using Serverless.Model.Training;

namespace Serverless.Model.Tests.Training;

public sealed class ModelCheckpointTests
{
    private static ModelCheckpoint Checkpoint()
    {
        var t = SharedTraining.Models[ArchitectureKind.CnnLstm];
        return new ModelCheckpoint(t.Model.Config, SharedTraining.Data.Preprocessor, t.Run.Parameters).Validated();
    }

    [Fact]
    public void A_checkpoint_round_trips_through_json_exactly()
    {
        var c = Checkpoint();
        var back = ModelCheckpoint.FromJson(c.ToJson());
        Assert.Equal(c.Config, back.Config);
        Assert.Equal(c.Parameters, back.Parameters);
        Assert.Equal(c.Preprocessor.ToJson(), back.Preprocessor.ToJson());
    }

    [Theory]
    [InlineData("not json", "not valid JSON")]
    [InlineData("{}", "missing")]
    public void Malformed_checkpoints_are_rejected(string json, string message)
    {
        var e = Assert.Throws<InvalidDataException>(() => ModelCheckpoint.FromJson(json));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Checkpoints_with_wrong_parameters_or_mismatched_preprocessing_are_rejected()
    {
        var c = Checkpoint();
        var json = c.ToJson();
        var b64 = Convert.ToBase64String(new byte[12]);
        var shortParams = System.Text.RegularExpressions.Regex.Replace(json, "\"Parameters\": \"[^\"]*\"", $"\"Parameters\": \"{b64}\"");
        Assert.Contains("parameters", Assert.Throws<InvalidDataException>(() => ModelCheckpoint.FromJson(shortParams)).Message);
        var notBase64 = System.Text.RegularExpressions.Regex.Replace(json, "\"Parameters\": \"[^\"]*\"", "\"Parameters\": \"@@@\"");
        Assert.Contains("base64", Assert.Throws<InvalidDataException>(() => ModelCheckpoint.FromJson(notBase64)).Message);
        Assert.Throws<InvalidDataException>(() => (c with { Config = c.Config with { Features = c.Config.Features + 1 } }).Validated());
        var nan = c.Parameters.ToArray();
        nan[0] = float.NaN;
        Assert.Throws<InvalidDataException>(() => (c with { Parameters = nan }).Validated());
    }
}
