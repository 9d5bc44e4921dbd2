using System.Net.Http;
using System.Text;

namespace Serverless.Client.Partner;

/// <summary>
/// <c>partner keygen | register | encrypt | submit | wait | decrypt | score</c>: a partner scores its
/// records on the platform without the server ever seeing a record, a score or a secret key.
/// </summary>
internal static class PartnerCommands
{
    private const string TokenVariable = "SERVERLESS_TOKEN";

    public static Command Create()
    {
        var partner = new Command("partner", "Encrypted inference as a partner: keys, encryption, submission, decryption");
        partner.Subcommands.Add(Keygen());
        partner.Subcommands.Add(Register());
        partner.Subcommands.Add(Encrypt());
        partner.Subcommands.Add(Submit());
        partner.Subcommands.Add(Wait());
        partner.Subcommands.Add(Decrypt());
        partner.Subcommands.Add(Score());
        partner.Subcommands.Add(PublishModel());
        return partner;
    }

    // Options shared by several commands (a fresh instance per command: System.CommandLine options belong to one command).
    private static Option<string> ServerOption(bool required = true) => new("--server") { Description = "The function host, e.g. http://127.0.0.1:7071", Required = required };
    private static Option<string?> TokenOption() => new("--token") { Description = $"Bearer token with role partner (default: env {TokenVariable}); issue one with 'admin token issue --role partner --tenant T'" };
    private static Option<string?> TenantOption() => new("--tenant") { Description = "Partner tenant (default: the token's tenant claim)" };
    private static Option<DirectoryInfo> KeysOption() => new("--keys") { Description = "Key directory (package.json, partner.keys 0600, evaluation-keys.bin)", Required = true };
    private static Option<string> BatchIdOption() => new("--batch-id") { Description = "Batch id, unique per batch (letters, digits, '.', '_', '-')", Required = true };
    private static Option<bool> InsecureOption() => new("--allow-insecure-for-tests") { Description = "Accept CKKS parameters above the 128-bit bound (test servers only)" };
    private static Option<TimeSpan> TimeoutOption() => new("--timeout") { Description = "How long to wait for the result (hh:mm:ss)", DefaultValueFactory = _ => TimeSpan.FromMinutes(10) };
    private static Option<string> FormatOption() => new Option<string>("--format") { Description = "csv (cohort CSV) or fhir (R4 bundles)", DefaultValueFactory = _ => "csv" }.AcceptOnlyFromAmong("csv", "fhir");
    private static Option<FileInfo?> PseudonymKeyOption() => new("--key-file") { Description = "Pseudonymization key for FHIR patient ids (>= 32 bytes raw or hex); default a one-time key" };
    private static Option<bool> AllowErrorsOption() => new("--allow-errors") { Description = "Encrypt the valid patients even if some rows were rejected" };

    /// <summary>Where a queue submission goes: the platform's storage account (Azure / Azurite). Without it, batches go over HTTP.</summary>
    private sealed record QueueTargetOptions(Option<string?> BlobEndpoint, Option<string?> QueueEndpoint, Option<string> Account)
    {
        public static QueueTargetOptions Create() => new(
            new("--blob-endpoint") { Description = "Submit through Azure Storage: blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1" },
            new("--queue-endpoint") { Description = "Azure Storage queue endpoint, e.g. http://127.0.0.1:10001/devstoreaccount1" },
            new("--account") { Description = $"Storage account name (key from env {PartnerQueue.AccountKeyVariable})", DefaultValueFactory = _ => "devstoreaccount1" });

        public void AddTo(Command cmd)
        {
            cmd.Options.Add(BlobEndpoint);
            cmd.Options.Add(QueueEndpoint);
            cmd.Options.Add(Account);
        }

        public PartnerQueue? Open(ParseResult r)
        {
            var blob = r.GetValue(BlobEndpoint);
            var queue = r.GetValue(QueueEndpoint);
            if (blob is null && queue is null) return null;
            if (blob is null || queue is null) throw new ArgumentException("a storage-account submission needs both --blob-endpoint and --queue-endpoint");
            return PartnerQueue.OpenAzure(AbsoluteUri(blob, "--blob-endpoint"), AbsoluteUri(queue, "--queue-endpoint"), r.GetValue(Account)!);
        }
    }

    private static Command Keygen()
    {
        var server = ServerOption(required: false);
        var token = TokenOption();
        var version = new Option<string?>("--version") { Description = "Model version to generate keys for (downloads its package from --server)" };
        var package = new Option<FileInfo?>("--package") { Description = "A package.json downloaded before, instead of --server/--version" };
        var keys = KeysOption();
        var force = new Option<bool>("--force") { Description = "Replace an existing key pair" };
        var insecure = InsecureOption();
        var cmd = new Command("keygen", "Download a model version's package and generate a CKKS key pair for it (the secret key stays in --keys)")
            { server, token, version, package, keys, force, insecure };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            string json;
            if (r.GetValue(package) is { } file) json = await File.ReadAllTextAsync(file.FullName, ct);
            else
            {
                var v = r.GetValue(version) ?? throw new ArgumentException("pass --server and --version, or --package");
                using var api = Api(r, server, token, required: true);
                json = await api!.GetModelPackageAsync(v, ct);
            }
            var keyId = await PartnerWorkflow.KeygenAsync(r.GetValue(keys)!, json, r.GetValue(insecure), r.GetValue(force), ct);
            Console.WriteLine($"generated keys in {r.GetValue(keys)!.FullName}: key id {keyId} (partner.keys is secret: sealed, mode 0600; register evaluation-keys.bin)");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Register()
    {
        var server = ServerOption();
        var token = TokenOption();
        var tenant = TenantOption();
        var keys = KeysOption();
        var insecure = InsecureOption();
        var cmd = new Command("register", "Register the public evaluation keys (never the secret key) for the package's model version") { server, token, tenant, keys, insecure };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var dir = r.GetValue(keys)!;
            var package = PartnerWorkflow.LoadPackage(dir, r.GetValue(insecure));
            var bundle = PartnerFiles.ReadRequired(dir, PartnerFiles.EvaluationKeys, "run 'partner keygen' first");
            using var api = Api(r, server, token, required: true)!;
            var answer = await api.RegisterKeysAsync(Tenant(r, tenant, token), package.ModelVersion, bundle, ct);
            Console.WriteLine($"registered key id {answer.KeyId} for model version {package.ModelVersion}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Encrypt()
    {
        var keys = KeysOption();
        var format = FormatOption();
        var keyFile = PseudonymKeyOption();
        var allow = AllowErrorsOption();
        var insecure = InsecureOption();
        var output = new Option<FileInfo>("--out") { Description = "Encrypted batch to write; the patient ids go to <out>.ids.csv", Required = true };
        var data = new Argument<string[]>("path") { Description = "Cohort CSV files / FHIR bundles or directories", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("encrypt", "Preprocess records with the model version's statistics and encrypt them under the partner's keys") { keys, format, keyFile, allow, insecure, output, data };
        cmd.SetAction((r, ct) => Cli.GuardAsync(() => PartnerProgress.RunAsync(async progress =>
        {
            var dir = r.GetValue(keys)!;
            var package = PartnerWorkflow.LoadPackage(dir, r.GetValue(insecure));
            var encrypted = await PartnerWorkflow.EncryptAsync(dir, package, r.GetValue(format)!, r.GetValue(data)!, r.GetValue(keyFile), r.GetValue(allow), progress, ct);
            var path = r.GetValue(output)!.FullName;
            PartnerFiles.WriteAtomically(path, encrypted.Batch);
            PartnerWorkflow.WriteIds(path + ".ids.csv", encrypted.PatientIds);
            Console.WriteLine($"wrote {path} ({encrypted.PatientIds.Count} records, sha256 {Convert.ToHexStringLower(SHA256.HashData(encrypted.Batch))})");
            return Cli.Ok;
        })));
        return cmd;
    }

    private static Command Submit()
    {
        var server = ServerOption(required: false);
        var token = TokenOption();
        var tenant = TenantOption();
        var keys = KeysOption();
        var insecure = InsecureOption();
        var batchId = BatchIdOption();
        var batch = new Option<FileInfo>("--batch") { Description = "Encrypted batch written by 'partner encrypt'", Required = true };
        var target = QueueTargetOptions.Create();
        var cmd = new Command("submit", "Submit an encrypted batch: over HTTP (--server) or through the partner-batches queue of the storage account (--blob-endpoint/--queue-endpoint)")
            { server, token, tenant, keys, insecure, batchId, batch };
        target.AddTo(cmd);
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var package = PartnerWorkflow.LoadPackage(r.GetValue(keys)!, r.GetValue(insecure));
            var bytes = await File.ReadAllBytesAsync(r.GetValue(batch)!.FullName, ct);
            Console.WriteLine(await SubmitAsync(r, server, token, tenant, target, r.GetValue(batchId)!, package.ModelVersion, bytes, ct));
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Wait()
    {
        var server = ServerOption();
        var token = TokenOption();
        var tenant = TenantOption();
        var batchId = BatchIdOption();
        var timeout = TimeoutOption();
        var output = new Option<FileInfo>("--out") { Description = "Where to write the encrypted result", Required = true };
        var cmd = new Command("wait", "Poll until the batch's encrypted result is ready and download it") { server, token, tenant, batchId, timeout, output };
        cmd.SetAction((r, ct) => Cli.GuardAsync(() => PartnerProgress.RunAsync(async progress =>
        {
            using var api = Api(r, server, token, required: true)!;
            var result = await PartnerWorkflow.WaitAsync(api, Tenant(r, tenant, token), r.GetValue(batchId)!, r.GetValue(timeout), progress, ct);
            PartnerFiles.WriteAtomically(r.GetValue(output)!.FullName, result);
            Console.WriteLine($"wrote {r.GetValue(output)!.FullName}");
            return Cli.Ok;
        })));
        return cmd;
    }

    private static Command Decrypt()
    {
        var keys = KeysOption();
        var insecure = InsecureOption();
        var result = new Option<FileInfo>("--result") { Description = "Encrypted result from 'partner wait'", Required = true };
        var ids = new Option<FileInfo?>("--ids") { Description = "Patient ids of the batch (<batch>.ids.csv from 'partner encrypt')" };
        var output = new Option<FileInfo>("--out") { Description = "Scores CSV to write: record,patient_id,probability", Required = true };
        var cmd = new Command("decrypt", "Decrypt the result with the secret key and write the scores as CSV") { keys, insecure, result, ids, output };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var dir = r.GetValue(keys)!;
            var package = PartnerWorkflow.LoadPackage(dir, r.GetValue(insecure));
            var bytes = await File.ReadAllBytesAsync(r.GetValue(result)!.FullName, ct);
            var idList = r.GetValue(ids) is { } f ? PartnerWorkflow.ReadIds(f.FullName) ?? throw new FileNotFoundException($"no such file: {f.FullName}") : null;
            var scores = await PartnerWorkflow.DecryptAsync(dir, package, bytes, idList, r.GetValue(output)!.FullName, ct);
            Console.WriteLine($"wrote {scores.Length} scores to {r.GetValue(output)!.FullName}");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static Command Score()
    {
        var server = ServerOption();
        var token = TokenOption();
        var tenant = TenantOption();
        var keys = KeysOption();
        var version = new Option<string?>("--version") { Description = "Model version (needed when --keys has no key pair yet)" };
        var insecure = InsecureOption();
        var format = FormatOption();
        var keyFile = PseudonymKeyOption();
        var allow = AllowErrorsOption();
        var batchId = new Option<string?>("--batch-id") { Description = "Batch id (default: a new random id)" };
        var timeout = TimeoutOption();
        var output = new Option<FileInfo>("--out") { Description = "Scores CSV to write: record,patient_id,probability", Required = true };
        var data = new Argument<string[]>("path") { Description = "Cohort CSV files / FHIR bundles or directories", Arity = ArgumentArity.OneOrMore };
        var target = QueueTargetOptions.Create();
        var cmd = new Command("score", "All in one: keygen + register (when --keys is empty), encrypt, submit (HTTP or queue), wait, decrypt")
            { server, token, tenant, keys, version, insecure, format, keyFile, allow, batchId, timeout, output, data };
        target.AddTo(cmd);
        cmd.SetAction((r, ct) => Cli.GuardAsync(() => PartnerProgress.RunAsync(async progress =>
        {
            var dir = r.GetValue(keys)!;
            using var api = Api(r, server, token, required: true)!;
            var tenantId = Tenant(r, tenant, token);
            if (!File.Exists(PartnerFiles.PathIn(dir, PartnerFiles.SecretKey)))
            {
                var v = r.GetValue(version) ?? throw new ArgumentException($"{dir.FullName} holds no key pair; pass --version to generate and register one");
                progress.Report("keys", 0, 2);
                var keyId = await PartnerWorkflow.KeygenAsync(dir, await api.GetModelPackageAsync(v, ct), r.GetValue(insecure), overwrite: false, ct);
                progress.Report("keys", 1, 2);
                var fresh = PartnerWorkflow.LoadPackage(dir, r.GetValue(insecure));
                await api.RegisterKeysAsync(tenantId, fresh.ModelVersion, PartnerFiles.ReadRequired(dir, PartnerFiles.EvaluationKeys, "keygen"), ct);
                progress.Done("keys", $"generated and registered key id {keyId}");
            }
            var package = PartnerWorkflow.LoadPackage(dir, r.GetValue(insecure));
            var encrypted = await PartnerWorkflow.EncryptAsync(dir, package, r.GetValue(format)!, r.GetValue(data)!, r.GetValue(keyFile), r.GetValue(allow), progress, ct);
            var id = r.GetValue(batchId) ?? "b-" + Guid.NewGuid().ToString("N")[..16];
            progress.Report("submit", 0, 1);
            progress.Done("submit", await SubmitAsync(r, server, token, tenant, target, id, package.ModelVersion, encrypted.Batch, ct));
            var result = await PartnerWorkflow.WaitAsync(api, tenantId, id, r.GetValue(timeout), progress, ct);
            progress.Report("decrypt", 0, 1);
            var scores = await PartnerWorkflow.DecryptAsync(dir, package, result, encrypted.PatientIds, r.GetValue(output)!.FullName, ct);
            progress.Done("decrypt", $"{scores.Length} scores written to {r.GetValue(output)!.FullName}");
            return Cli.Ok;
        })));
        return cmd;
    }

    /// <summary>
    /// The operator's side, here because it exists for partners: train the HE-friendly CNN-LSTM on cohort
    /// files and publish it as a model version (operator token). Parameters: the library's secure default
    /// for the model's depth, or a small test ring with <c>--ring</c> (servers that allow insecure test parameters only).
    /// </summary>
    private static Command PublishModel()
    {
        var server = ServerOption();
        var token = TokenOption();
        var version = new Option<string>("--version") { Description = "Model version to publish", Required = true };
        var format = FormatOption();
        var keyFile = PseudonymKeyOption();
        var allow = AllowErrorsOption();
        var steps = new Option<int>("--steps") { Description = "Visits per record (window)", DefaultValueFactory = _ => 4 };
        var epochs = new Option<int>("--epochs") { Description = "Training epochs", DefaultValueFactory = _ => 25 };
        var seed = new Option<int>("--seed") { Description = "Training seed", DefaultValueFactory = _ => 1 };
        var ring = new Option<int?>("--ring") { Description = "CKKS ring degree for a test server (e.g. 4096; insecure); default: the library's 128-bit parameters for the model" };
        var output = new Option<FileInfo?>("--out") { Description = "Also write the trained checkpoint (JSON) here" };
        var data = new Argument<string[]>("path") { Description = "Training cohort files or directories", Arity = ArgumentArity.OneOrMore };
        var tenants = new Option<string[]>("--tenant") { Description = "Partner tenant entitled to the version (repeatable; '*' for every partner)", Required = true, AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("publish-model", "Operator: train the HE-friendly CNN-LSTM on cohort files and publish it for encrypted inference")
            { server, token, version, format, keyFile, allow, steps, epochs, seed, ring, output, tenants, data };
        cmd.SetAction((r, ct) => Cli.GuardAsync(async () =>
        {
            var patients = PartnerWorkflow.ImportPatients(r.GetValue(format)!, r.GetValue(data)!, r.GetValue(keyFile), r.GetValue(allow));
            var schema = Serverless.Model.Data.CohortGenerator.Schema;
            var preprocessor = Serverless.Model.Preprocessing.Preprocessor.Fit(schema, patients, r.GetValue(steps));
            var options = new Serverless.Inference.HeModelOptions { Steps = r.GetValue(steps), Epochs = r.GetValue(epochs), Seed = r.GetValue(seed) };
            var ringValue = r.GetValue(ring);
            var config = Serverless.Inference.HeModel.HeFriendlyConfig(preprocessor.Features, options);
            var parameters = ringValue is { } n ? Serverless.Inference.HeModel.CreateParameters(n, Serverless.Inference.HeModel.LevelsRequired(config), allowInsecureForTests: true) : null;
            var model = Serverless.Inference.HeModel.Train(preprocessor, preprocessor.Transform(patients), options, parameters: parameters, modelVersion: r.GetValue(version)!);
            var checkpoint = model.Checkpoint.ToJson();
            if (r.GetValue(output) is { } file) PartnerFiles.WriteAtomically(file.FullName, Encoding.UTF8.GetBytes(checkpoint));
            var publication = JsonSerializer.SerializeToUtf8Bytes(new
            {
                checkpoint = JsonDocument.Parse(checkpoint).RootElement,
                ckks = ringValue is null ? null : new { n = model.Plan.Parameters.N, levels = model.Plan.Parameters.MaxLevel },
                tenants = r.GetValue(tenants),
            }, new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull });
            using var api = Api(r, server, token, required: true)!;
            var info = await api.PublishModelAsync(r.GetValue(version)!, publication, ct);
            Console.WriteLine($"trained on {patients.Count} patients ({model.Plan}); published {r.GetValue(version)} (parameters hash {info.ParametersHash})");
            return Cli.Ok;
        }));
        return cmd;
    }

    private static async Task<string> SubmitAsync(ParseResult r, Option<string> server, Option<string?> token, Option<string?> tenant, QueueTargetOptions target,
        string batchId, string version, byte[] batch, CancellationToken ct)
    {
        var tenantId = Tenant(r, tenant, token);
        var bearer = Token(r, token) ?? throw new ArgumentException($"pass --token or set {TokenVariable}");
        var queue = target.Open(r);
        if (queue is not null)
        {
            var messageId = await queue.SubmitAsync(tenantId, batchId, version, batch, bearer, ct);
            return $"batch {batchId} queued on partner-batches (message {messageId}, {batch.Length} bytes)";
        }
        using var api = Api(r, server, token, required: true)!;
        var receipt = await api.SubmitAsync(tenantId, batchId, version, batch, ct);
        return $"batch {batchId} accepted over HTTP{(receipt.Duplicate ? " (a duplicate: answered by the first submission)" : "")}; poll {receipt.StatusUri}";
    }

    private static string? Token(ParseResult r, Option<string?> token) =>
        r.GetValue(token) is { Length: > 0 } t ? t.Trim() : Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } e ? e.Trim() : null;

    private static string Tenant(ParseResult r, Option<string?> tenant, Option<string?> token) =>
        r.GetValue(tenant) ?? PartnerWorkflow.TenantOf(Token(r, token))
        ?? throw new ArgumentException("pass --tenant (the token carries no tenant claim)");

    private static PartnerApi? Api(ParseResult r, Option<string> server, Option<string?> token, bool required)
    {
        var uri = r.GetValue(server);
        if (uri is null) return required ? throw new ArgumentException("pass --server") : null;
        return PartnerApi.Create(AbsoluteUri(uri.EndsWith('/') ? uri : uri + "/", "--server"), Token(r, token));
    }

    private static Uri AbsoluteUri(string value, string option) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : throw new ArgumentException($"{option} must be an absolute http(s) URL, got '{value}'");

}
