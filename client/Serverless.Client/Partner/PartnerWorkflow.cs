using System.Text;
using System.Text.Json.Nodes;
using Serverless.Inference;
using Serverless.Model.Data;
using Serverless.Model.Import;
using Serverless.Model.Preprocessing;

namespace Serverless.Client.Partner;

/// <summary>A model version's package as the partner keeps it: the plan (CKKS parameters, layout) and the preprocessing statistics.</summary>
internal sealed record PartnerPackage(string ModelVersion, EvaluationPlan Plan, Preprocessor Preprocessor);

/// <summary>Encrypted records ready to submit, with the patient id of every record (in record order).</summary>
internal sealed record EncryptedRecords(byte[] Batch, IReadOnlyList<string> PatientIds, string KeyId);

/// <summary>
/// The partner's steps, shared by the single commands and <c>partner score</c>. Everything secret
/// stays in this process and the key directory: the server receives the public evaluation keys,
/// ciphertexts and nothing else.
/// </summary>
internal static class PartnerWorkflow
{
    public static PartnerPackage ParsePackage(string json, bool allowInsecure)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"the model package is not JSON ({e.Message})", e);
        }
        var plan = root?["plan"] ?? throw new InvalidDataException("the model package has no 'plan'");
        var pre = root["preprocessor"] ?? throw new InvalidDataException("the model package has no 'preprocessor'");
        var evaluationPlan = EvaluationPlan.FromJson(plan.ToJsonString(), allowInsecure);
        var preprocessor = Preprocessor.FromJson(pre.ToJsonString()).Validated();
        if (preprocessor.Steps != evaluationPlan.Steps || preprocessor.Features != evaluationPlan.Features)
            throw new InvalidDataException($"the package's preprocessor makes [{preprocessor.Steps}, {preprocessor.Features}], its plan expects [{evaluationPlan.Steps}, {evaluationPlan.Features}]");
        return new PartnerPackage(evaluationPlan.ModelVersion, evaluationPlan, preprocessor);
    }

    public static PartnerPackage LoadPackage(DirectoryInfo keys, bool allowInsecure) =>
        ParsePackage(Encoding.UTF8.GetString(PartnerFiles.ReadRequired(keys, PartnerFiles.Package, "run 'partner keygen' first")), allowInsecure);

    /// <summary>Generates a key pair for the package's plan: the secret stays in <c>partner.keys</c> (0600), the public bundle goes to <c>evaluation-keys.bin</c>.</summary>
    public static async Task<string> KeygenAsync(DirectoryInfo keys, string packageJson, bool allowInsecure, bool overwrite, CancellationToken cancellationToken = default)
    {
        var package = ParsePackage(packageJson, allowInsecure);
        keys.Create();
        if (!overwrite && File.Exists(PartnerFiles.PathIn(keys, PartnerFiles.SecretKey)))
            throw new IOException($"{PartnerFiles.PathIn(keys, PartnerFiles.SecretKey)} exists; refusing to replace a key pair (pass --force, and register the new keys under a new model version)");
        using var pair = PartnerKeys.Generate(package.Plan);
        var exported = pair.Export();
        try
        {
            await PartnerFiles.WriteSecretKeyAsync(keys, exported, cancellationToken);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(exported);
        }
        PartnerFiles.WriteAtomically(PartnerFiles.PathIn(keys, PartnerFiles.EvaluationKeys), pair.EvaluationKeys.ToBytes());
        PartnerFiles.WriteAtomically(PartnerFiles.PathIn(keys, PartnerFiles.Package), Encoding.UTF8.GetBytes(packageJson));
        return pair.EvaluationKeys.KeyIdHex.ToLowerInvariant();
    }

    public static async Task<PartnerKeys> LoadKeysAsync(DirectoryInfo keys, PartnerPackage package, CancellationToken cancellationToken = default)
    {
        var bytes = await PartnerFiles.ReadSecretKeyAsync(keys, cancellationToken);
        try
        {
            return PartnerKeys.Import(bytes, package.Plan);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    /// <summary>Imports patients (cohort CSV or FHIR bundles), preprocesses them with the package's statistics and encrypts them under the partner's keys.</summary>
    public static async Task<EncryptedRecords> EncryptAsync(DirectoryInfo keys, PartnerPackage package, string format, string[] paths, FileInfo? pseudonymKey, bool allowErrors, PartnerProgress progress, CancellationToken cancellationToken = default)
    {
        progress.Report("import", 0, 1);
        var patients = ImportPatients(format, paths, pseudonymKey, allowErrors);
        var data = package.Preprocessor.Transform(patients);
        progress.Done("import", $"{patients.Count} patients preprocessed into {data.Steps} visits × {data.Features} features");
        if (data.Count > package.Plan.MaxRecords)
            throw new ArgumentException($"{data.Count} records exceed the model version's limit of {package.Plan.MaxRecords} per batch; split the input");
        progress.Report("encrypt", 0, 1, $"{data.Count} records");
        using var pair = await LoadKeysAsync(keys, package, cancellationToken);
        var batch = BatchEncryptor.Encrypt(data, pair);
        var bytes = batch.ToBytes();
        progress.Done("encrypt", string.Create(CultureInfo.InvariantCulture, $"{data.Count} records in {batch.Groups.Count} ciphertext group(s), {bytes.Length / 1048576.0:F1} MiB"));
        return new EncryptedRecords(bytes, patients.Select(p => p.PatientId).ToArray(), batch.KeyIdHex.ToLowerInvariant());
    }

    public static IReadOnlyList<PatientRecord> ImportPatients(string format, string[] paths, FileInfo? pseudonymKey, bool allowErrors)
    {
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.GetFiles(p, format == "fhir" ? "*.json" : "*.csv").Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new FileNotFoundException($"no such file or directory: {p}");
        }
        if (files.Count == 0) throw new InvalidDataException($"no {(format == "fhir" ? "*.json" : "*.csv")} files in {string.Join(", ", paths)}");
        using var pseudonymizer = format == "fhir" ? new Pseudonymizer(PseudonymKey(pseudonymKey)) : null;
        var results = files.Select(f => format == "fhir" ? FhirBundleImporter.Read(f, pseudonymizer!) : CohortCsv.Read(f)).ToList();
        var errors = results.SelectMany(r => r.Errors).ToList();
        if (errors.Count > 0 && !allowErrors)
            throw new InvalidDataException($"{errors.Count} import error(s), first: {errors[0]} (fix the input, or pass --allow-errors to encrypt the valid patients)");
        foreach (var e in errors) Console.Error.WriteLine($"warning: {e}");
        var patients = results.SelectMany(r => r.Cohort.Patients).ToList();
        if (patients.Count == 0) throw new InvalidDataException("no valid patients in the input");
        return patients;
    }

    private static byte[] PseudonymKey(FileInfo? file)
    {
        if (file is null) return RandomNumberGenerator.GetBytes(Pseudonymizer.MinimumKeyBytes);
        var raw = File.ReadAllBytes(file.FullName);
        var text = Encoding.ASCII.GetString(raw).Trim();
        return text.Length >= 64 && text.All(Uri.IsHexDigit) ? Convert.FromHexString(text) : raw;
    }

    /// <summary>Polls until the result is there (202 while running), reporting the server's phase; a refusal throws with the server's reason.</summary>
    public static async Task<byte[]> WaitAsync(PartnerApi api, string tenant, string batchId, TimeSpan timeout, PartnerProgress progress, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var phases = new[] { "queued", "Pending", "validating", "evaluating", "storing", "done" };
        var delay = TimeSpan.FromMilliseconds(200);
        try
        {
            while (true)
            {
                var (result, phase) = await api.PollAsync(tenant, batchId, deadline.Token);
                var step = Math.Max(0, Array.IndexOf(phases, phase));
                progress.Report("evaluate", step, phases.Length - 1, phase);
                if (result is not null)
                {
                    progress.Done("evaluate", $"batch {batchId} evaluated, {result.Length} bytes of encrypted scores");
                    return result;
                }
                await Task.Delay(delay, deadline.Token);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 1.5, 2000));
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"batch {batchId} was not done after {timeout} (still queued or running; run 'partner wait' again later)");
        }
    }

    /// <summary>Decrypts a result and writes <c>record,patient_id,probability</c> rows (atomically).</summary>
    public static async Task<float[]> DecryptAsync(DirectoryInfo keys, PartnerPackage package, byte[] result, IReadOnlyList<string>? patientIds, string outPath, CancellationToken cancellationToken = default)
    {
        using var pair = await LoadKeysAsync(keys, package, cancellationToken);
        var scores = ScoreDecryptor.Decrypt(result, pair);
        if (patientIds is not null && patientIds.Count != scores.Length)
            throw new InvalidDataException($"the result has {scores.Length} scores, the id list {patientIds.Count} patients (ids of another batch?)");
        var csv = new StringBuilder("record,patient_id,probability\n");
        for (var i = 0; i < scores.Length; i++)
            csv.Append(CultureInfo.InvariantCulture, $"{i},{CsvField(patientIds?[i] ?? "")},{scores[i].ToString("G9", CultureInfo.InvariantCulture)}\n");
        PartnerFiles.WriteAtomically(outPath, Encoding.UTF8.GetBytes(csv.ToString()));
        return scores;
    }

    public static void WriteIds(string path, IReadOnlyList<string> ids) =>
        PartnerFiles.WriteAtomically(path, Encoding.UTF8.GetBytes("patient_id\n" + string.Concat(ids.Select(id => CsvField(id) + "\n"))));

    public static IReadOnlyList<string>? ReadIds(string path)
    {
        if (!File.Exists(path)) return null;
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || lines[0] != "patient_id") throw new InvalidDataException($"{path} is not an id list written by 'partner encrypt'");
        return lines.Skip(1).Select(l => l.Length >= 2 && l[0] == '"' ? l[1..^1].Replace("\"\"", "\"", StringComparison.Ordinal) : l).ToArray();
    }

    private static string CsvField(string s) => s.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;

    /// <summary>The <c>tenant</c> claim of a bearer token (read, not validated: the server validates it).</summary>
    public static string? TenantOf(string? token)
    {
        var parts = token?.Split('.');
        if (parts is not { Length: 3 }) return null;
        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + (4 - payload.Length % 4) % 4, '=');
            using var doc = JsonDocument.Parse(Convert.FromBase64String(payload));
            return doc.RootElement.TryGetProperty("tenant", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            return null;
        }
    }
}
