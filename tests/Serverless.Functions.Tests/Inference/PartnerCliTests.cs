using System.Globalization;
using System.Net;
using Serverless.Client.Tests.Commands;
using Serverless.Model.Data;
using Serverless.Model.Import;
using Serverless.Testing;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// The partner CLI against a running host: <c>partner score</c> through the storage account's queue (Azurite),
/// and the single steps keygen, register, encrypt, submit (HTTP), wait, decrypt. Decrypted
/// scores must match the plaintext HE-friendly model on the same patients.
/// </summary>
[Collection(InferenceCollection.Name)]
public sealed class PartnerCliTests(InferenceScenario scenario) : IAsyncLifetime
{
    private readonly TempDir _dir = new();
    private InferenceHost _host = null!;
    private const string Version = "he-cli";

    public async Task InitializeAsync()
    {
        _host = await InferenceHost.StartAsync();
        await _host.PublishAsync(scenario, Version);
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        _dir.Dispose();
    }

    /// <summary>A partner's own patients (another seed than the training cohort) as a cohort CSV.</summary>
    private (string Csv, IReadOnlyList<PatientRecord> Patients) PartnerPatients(int seed, int patients)
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 1, PatientsPerHospital = patients, Visits = 8, Seed = seed });
        var path = _dir.Sub($"patients-{seed}.csv");
        using (var writer = new StreamWriter(path)) CohortCsv.Write(cohort.Hospitals[0].Patients, writer);
        var read = CohortCsv.Read(path); // what the CLI will read
        Assert.Empty(read.Errors);
        return (path, read.Cohort.Patients);
    }

    private void AssertScores(string csvPath, IReadOnlyList<PatientRecord> patients)
    {
        var expected = scenario.Model.PredictPlain(scenario.Model.Checkpoint.Preprocessor.Transform(patients));
        var lines = File.ReadAllLines(csvPath);
        Assert.Equal("record,patient_id,probability", lines[0]);
        Assert.Equal(patients.Count + 1, lines.Length);
        for (var i = 0; i < patients.Count; i++)
        {
            var fields = lines[i + 1].Split(',');
            Assert.Equal(i.ToString(CultureInfo.InvariantCulture), fields[0]);
            Assert.Equal(patients[i].PatientId, fields[1]);
            var score = double.Parse(fields[2], CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(score - expected[i]) < 1e-3, $"record {i}: decrypted {score}, plaintext {expected[i]}");
        }
    }

    [Fact]
    public async Task Partner_score_through_the_storage_accounts_queue_generates_registers_encrypts_submits_waits_and_decrypts()
    {
        // The app on Azurite, as on Azure: the partner reaches the storage account through Microsoft's SDK, never the host's files.
        await using var host = await InferenceHost.StartAsync(azurite: true);
        await host.PublishAsync(scenario, Version);
        var (csv, patients) = PartnerPatients(seed: 99, patients: 60);
        var token = await host.TokenAsync("svc-cli", "partner", "insurer-cli");
        var keys = _dir.Sub("keys");
        var scores = _dir.Sub("scores.csv");
        Environment.SetEnvironmentVariable("SERVERLESS_STORAGE_ACCOUNT_KEY", TestServers.AzuriteAccountKey);
        var batchId = "cli-queue-" + Guid.NewGuid().ToString("N")[..8]; // Azurite outlives the test: a fresh blob name each run
        var run = await CliRunner.RunAsync("partner", "score", "--server", host.Address.ToString(), "--token", token, "--keys", keys, "--version", Version,
            "--allow-insecure-for-tests", "--blob-endpoint", TestServers.AzuriteBlobEndpoint, "--queue-endpoint", TestServers.AzuriteQueueEndpoint,
            "--batch-id", batchId, "--timeout", "00:03:00", "--out", scores, csv);
        Assert.True(run.ExitCode == 0, run.Out + run.Error);
        Assert.Contains("queued on partner-batches", run.Out);
        AssertScores(scores, patients);

        // The secret key file is the owner's only.
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(keys, "partner.keys")));

        // Without the account key, a queue submission is refused in one line before anything is sent.
        Environment.SetEnvironmentVariable("SERVERLESS_STORAGE_ACCOUNT_KEY", null);
        var anyBatch = _dir.Sub("any.batch");
        await File.WriteAllBytesAsync(anyBatch, [1, 2, 3]);
        var keyless = await CliRunner.RunAsync("partner", "submit", "--token", token, "--keys", keys, "--allow-insecure-for-tests", "--batch-id", batchId + "-b", "--batch", anyBatch,
            "--blob-endpoint", TestServers.AzuriteBlobEndpoint, "--queue-endpoint", TestServers.AzuriteQueueEndpoint);
        Assert.Equal(1, keyless.ExitCode);
        Assert.Contains("SERVERLESS_STORAGE_ACCOUNT_KEY", Assert.Single(keyless.ErrorLines));
    }

    [Fact]
    public async Task Partner_score_of_FHIR_bundles_over_HTTP_matches_the_plaintext_model_on_the_imported_patients()
    {
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 1, PatientsPerHospital = 30, Visits = 8, Seed = 97 });
        var bundle = _dir.Sub("partner.json");
        using (var file = File.Create(bundle)) FhirBundleWriter.Write(cohort.Hospitals[0].Patients, file);
        var keyFile = _dir.Sub("pseudonym.key");
        await File.WriteAllTextAsync(keyFile, new string('7', 64));
        var token = await _host.TokenAsync("svc-fhir", "partner", "insurer-fhir");
        var scores = _dir.Sub("scores-fhir.csv");
        var run = await CliRunner.RunAsync("partner", "score", "--server", _host.Address.ToString(), "--token", token, "--keys", _dir.Sub("keys-fhir"), "--version", Version,
            "--allow-insecure-for-tests", "--format", "fhir", "--key-file", keyFile, "--batch-id", "fhir-1", "--out", scores, bundle);
        Assert.True(run.ExitCode == 0, run.Out + run.Error);
        Assert.Contains("accepted over HTTP", run.Out);
        // What the CLI imported (pseudonymized ids, same key) is what must have been scored.
        using var pseudonymizer = new Serverless.Model.Preprocessing.Pseudonymizer(Convert.FromHexString(new string('7', 64)));
        var imported = FhirBundleImporter.Read(bundle, pseudonymizer);
        Assert.Empty(imported.Errors);
        Assert.Equal(cohort.Hospitals[0].Patients.Count, imported.Cohort.Patients.Count);
        AssertScores(scores, imported.Cohort.Patients);
    }

    [Fact]
    public async Task An_operator_trains_and_publishes_with_the_CLI_and_a_partner_scores_against_that_version()
    {
        var (training, _) = PartnerPatients(seed: 96, patients: 250);
        var (csv, patients) = PartnerPatients(seed: 95, patients: 20);
        var checkpoint = _dir.Sub("published.json");
        var publish = await CliRunner.RunAsync("partner", "publish-model", "--server", _host.Address.ToString(), "--token", await _host.TokenAsync("op-cli", "operator"),
            "--version", "he-cli-trained", "--epochs", "3", "--ring", "4096", "--out", checkpoint, "--tenant", "insurer-trained", training);
        Assert.True(publish.ExitCode == 0, publish.Out + publish.Error);
        Assert.Contains("published he-cli-trained", publish.Out);
        // A partner may not publish.
        var denied = await CliRunner.RunAsync("partner", "publish-model", "--server", _host.Address.ToString(), "--token", await _host.TokenAsync("svc-x", "partner", "insurer-x"),
            "--version", "he-cli-denied", "--epochs", "1", "--ring", "4096", "--tenant", "*", training);
        Assert.Equal(1, denied.ExitCode);
        Assert.StartsWith("error: server answered 403", Assert.Single(denied.ErrorLines));

        var token = await _host.TokenAsync("svc-trained", "partner", "insurer-trained");
        var scores = _dir.Sub("scores-trained.csv");
        var run = await CliRunner.RunAsync("partner", "score", "--server", _host.Address.ToString(), "--token", token, "--keys", _dir.Sub("keys-trained"),
            "--version", "he-cli-trained", "--allow-insecure-for-tests", "--batch-id", "trained-1", "--out", scores, csv);
        Assert.True(run.ExitCode == 0, run.Out + run.Error);
        var model = Serverless.Inference.HeModel.Create(Serverless.Model.Training.ModelCheckpoint.FromJson(await File.ReadAllTextAsync(checkpoint)),
            parameters: null, "check");
        var expected = model.PredictPlain(model.Checkpoint.Preprocessor.Transform(patients));
        var lines = File.ReadAllLines(scores);
        for (var i = 0; i < patients.Count; i++)
        {
            var score = double.Parse(lines[i + 1].Split(',')[2], CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(score - expected[i]) < 1e-3, $"record {i}: decrypted {score}, plaintext {expected[i]}");
        }
    }

    [Fact]
    public async Task Single_steps_over_HTTP_and_one_line_errors()
    {
        var (csv, patients) = PartnerPatients(seed: 98, patients: 25);
        var token = await _host.TokenAsync("svc-steps", "partner", "insurer-steps");
        var keys = _dir.Sub("keys-steps");
        var server = _host.Address.ToString();

        var keygen = await CliRunner.RunAsync("partner", "keygen", "--server", server, "--token", token, "--version", Version, "--keys", keys, "--allow-insecure-for-tests");
        Assert.True(keygen.ExitCode == 0, keygen.Out + keygen.Error);
        var register = await CliRunner.RunAsync("partner", "register", "--server", server, "--token", token, "--keys", keys, "--allow-insecure-for-tests");
        Assert.True(register.ExitCode == 0, register.Out + register.Error);
        var batch = _dir.Sub("batch.bin");
        var encrypt = await CliRunner.RunAsync("partner", "encrypt", "--keys", keys, "--allow-insecure-for-tests", "--out", batch, csv);
        Assert.True(encrypt.ExitCode == 0, encrypt.Out + encrypt.Error);
        var submit = await CliRunner.RunAsync("partner", "submit", "--server", server, "--token", token, "--keys", keys, "--allow-insecure-for-tests", "--batch-id", "steps-1", "--batch", batch);
        Assert.True(submit.ExitCode == 0, submit.Out + submit.Error);
        Assert.Contains("accepted over HTTP", submit.Out);
        var result = _dir.Sub("result.bin");
        var wait = await CliRunner.RunAsync("partner", "wait", "--server", server, "--token", token, "--batch-id", "steps-1", "--out", result, "--timeout", "00:03:00");
        Assert.True(wait.ExitCode == 0, wait.Out + wait.Error);
        var scores = _dir.Sub("scores-steps.csv");
        var decrypt = await CliRunner.RunAsync("partner", "decrypt", "--keys", keys, "--allow-insecure-for-tests", "--result", result, "--ids", batch + ".ids.csv", "--out", scores);
        Assert.True(decrypt.ExitCode == 0, decrypt.Out + decrypt.Error);
        AssertScores(scores, patients);

        // Errors are one line: a refused batch (truncated) names the server's reason; a keygen over existing keys refuses.
        var bytes = await File.ReadAllBytesAsync(batch);
        await File.WriteAllBytesAsync(batch, bytes[..(bytes.Length / 2)]);
        var refused = await CliRunner.RunAsync("partner", "submit", "--server", server, "--token", token, "--keys", keys, "--allow-insecure-for-tests", "--batch-id", "steps-2", "--batch", batch);
        Assert.Equal(1, refused.ExitCode);
        var line = Assert.Single(refused.ErrorLines);
        Assert.StartsWith("error: server answered 400", line);
        Assert.Contains("truncated", line);
        var again = await CliRunner.RunAsync("partner", "keygen", "--server", server, "--token", token, "--version", Version, "--keys", keys, "--allow-insecure-for-tests");
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("refusing to replace a key pair", Assert.Single(again.ErrorLines));
        // Without the test opt-in, the client refuses the test server's insecure parameters.
        var strict = await CliRunner.RunAsync("partner", "encrypt", "--keys", keys, "--out", _dir.Sub("b2.bin"), csv);
        Assert.Equal(1, strict.ExitCode);
        Assert.Contains("128-bit", Assert.Single(strict.ErrorLines));
        Assert.Equal(HttpStatusCode.OK, (await _host.SendAsync(HttpMethod.Get, "api/partners/insurer-steps/keys/" + Version, token)).StatusCode);

        // The secret key is sealed at rest (issue 20, Low): the file is an envelope under the directory's own keyring, not the
        // exported key pair; one changed byte, or the file moved into another keys directory, is a one-line refusal.
        var secret = Path.Combine(keys, "partner.keys");
        var sealedBytes = await File.ReadAllBytesAsync(secret);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
        Assert.Equal("SLENV"u8.ToArray(), sealedBytes[..5]);
        var other = _dir.Sub("keys-other");
        Directory.CreateDirectory(other);
        foreach (var f in new[] { "package.json", "evaluation-keys.bin" }) File.Copy(Path.Combine(keys, f), Path.Combine(other, f));
        File.Copy(secret, Path.Combine(other, "partner.keys"));
        File.SetUnixFileMode(Path.Combine(other, "partner.keys"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var moved = await CliRunner.RunAsync("partner", "decrypt", "--keys", other, "--allow-insecure-for-tests", "--result", result, "--out", _dir.Sub("moved.csv"));
        Assert.Equal(1, moved.ExitCode);
        Assert.Contains("does not unseal", Assert.Single(moved.ErrorLines));
        sealedBytes[^5] ^= 1;
        await File.WriteAllBytesAsync(secret, sealedBytes);
        var tampered = await CliRunner.RunAsync("partner", "decrypt", "--keys", keys, "--allow-insecure-for-tests", "--result", result, "--out", _dir.Sub("tampered.csv"));
        Assert.Equal(1, tampered.ExitCode);
        Assert.Contains("does not unseal", Assert.Single(tampered.ErrorLines));
    }
}
