using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using Serverless.Model.Data;

namespace Serverless.Model.Onnx;

/// <summary>What ONNX Runtime computed and how fast (timed inside node, excluding process start and model load).</summary>
internal sealed record OrtRun(float[] Probabilities, int Outputs, double Seconds, double RecordsPerSecond);

/// <summary>
/// Test and benchmark helper: runs an ONNX file in the real ONNX Runtime through the node script
/// tests/Serverless.Model.Tests/Onnx/run-ort.mjs and the npm package onnxruntime-node.
/// </summary>
internal static class OrtNodeRunner
{
    public const string ScriptRelativePath = "tests/Serverless.Model.Tests/Onnx/run-ort.mjs";

    /// <summary>ONNXRUNTIME_NODE_DIR, else tools/node_modules/onnxruntime-node under the repository root.</summary>
    public static string? FindOnnxRuntimeNode(string? repoRoot)
    {
        var env = Environment.GetEnvironmentVariable("ONNXRUNTIME_NODE_DIR");
        if (!string.IsNullOrEmpty(env) && Directory.Exists(env)) return env;
        if (repoRoot is null) return null;
        var local = Path.Combine(repoRoot, "tools", "node_modules", "onnxruntime-node");
        return Directory.Exists(local) ? local : null;
    }

    public static void WriteInput(string path, SequenceDataset data)
    {
        var bytes = new byte[12 + 4 * (data.Values.Length + data.Mask.Length)];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, data.Count);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), data.Steps);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), data.Features);
        var offset = 12;
        foreach (var v in data.Values) { BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), v); offset += 4; }
        foreach (var v in data.Mask) { BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), v); offset += 4; }
        File.WriteAllBytes(path, bytes);
    }

    public static OrtRun Run(string script, string ortDirectory, string modelPath, SequenceDataset data, int repeats, string workDirectory)
    {
        Directory.CreateDirectory(workDirectory);
        var input = Path.Combine(workDirectory, "ort-input.bin");
        var output = Path.Combine(workDirectory, "ort-output.bin");
        WriteInput(input, data);
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { script, modelPath, input, output, repeats.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);
        start.Environment["ONNXRUNTIME_NODE_DIR"] = ortDirectory;
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start node");
        var stderrTask = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        var stderr = stderrTask.GetAwaiter().GetResult();
        if (process.ExitCode != 0) throw new InvalidOperationException($"run-ort.mjs failed ({process.ExitCode}): {stderr.Trim()}");

        var bytes = File.ReadAllBytes(output);
        var batch = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        var outputs = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4));
        if (batch != data.Count || bytes.Length != 8 + 4 * batch * outputs)
            throw new InvalidDataException($"ONNX Runtime output has batch {batch}, outputs {outputs}, {bytes.Length} bytes");
        var probabilities = new float[batch * outputs];
        for (var i = 0; i < probabilities.Length; i++) probabilities[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + 4 * i));
        using var timing = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var seconds = timing.RootElement.GetProperty("seconds").GetDouble();
        var rate = timing.RootElement.GetProperty("records_per_s").GetDouble();
        return new OrtRun(probabilities, outputs, seconds, rate);
    }
}
