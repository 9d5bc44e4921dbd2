using System.Buffers.Binary;
using System.Text.Json.Serialization;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Training;

/// <summary>
/// A trained model as one small JSON document: config, fitted preprocessor and the flat parameter vector
/// (little-endian float32, base64). Plain text: encryption at rest is the storage layer's job.
/// </summary>
public sealed record ModelCheckpoint(ModelConfig Config, Preprocessor Preprocessor, float[] Parameters)
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() }, WriteIndented = true };

    public ModelCheckpoint Validated()
    {
        ArgumentNullException.ThrowIfNull(Config);
        ArgumentNullException.ThrowIfNull(Preprocessor);
        ArgumentNullException.ThrowIfNull(Parameters);
        try
        {
            Config.Validated();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"checkpoint: {e.Message}", e);
        }
        Preprocessor.Validated();
        if (Preprocessor.Features != Config.Features || Preprocessor.Steps != Config.Steps)
            throw new InvalidDataException($"checkpoint: preprocessor makes [{Preprocessor.Steps}, {Preprocessor.Features}], the model expects [{Config.Steps}, {Config.Features}]");
        if (Preprocessor.Schema.Classes != Config.Classes)
            throw new InvalidDataException($"checkpoint: schema has {Preprocessor.Schema.Classes} classes, the model {Config.Classes}");
        var expected = new CnnLstm(Config).ParameterCount;
        if (Parameters.Length != expected) throw new InvalidDataException($"checkpoint: {Parameters.Length} parameters, the model needs {expected}");
        foreach (var p in Parameters) if (!float.IsFinite(p)) throw new InvalidDataException("checkpoint: parameters contain NaN or infinity");
        return this;
    }

    public string ToJson()
    {
        var bytes = new byte[Parameters.Length * 4];
        for (var i = 0; i < Parameters.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), Parameters[i]);
        return JsonSerializer.Serialize(new Dto(Config, Preprocessor, Convert.ToBase64String(bytes)), Json);
    }

    public static ModelCheckpoint FromJson(string json)
    {
        Dto dto;
        try
        {
            dto = JsonSerializer.Deserialize<Dto>(json, Json) ?? throw new InvalidDataException("checkpoint: empty JSON");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"checkpoint: not valid JSON ({e.Message})", e);
        }
        if (dto.Config is null || dto.Preprocessor is null || dto.Parameters is null) throw new InvalidDataException("checkpoint: config, preprocessor or parameters missing");
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(dto.Parameters);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException("checkpoint: parameters are not base64", e);
        }
        if (bytes.Length % 4 != 0) throw new InvalidDataException("checkpoint: parameter bytes are not a whole number of floats");
        var p = new float[bytes.Length / 4];
        for (var i = 0; i < p.Length; i++) p[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
        if (dto.Preprocessor.Schema?.StaticFeatures is null || dto.Preprocessor.Schema.VisitFeatures is null || dto.Preprocessor.Schema.ClassNames is null)
            throw new InvalidDataException("checkpoint: preprocessor schema is incomplete");
        return new ModelCheckpoint(dto.Config, dto.Preprocessor, p).Validated();
    }

    private sealed record Dto(ModelConfig Config, Preprocessor Preprocessor, string Parameters);
}
