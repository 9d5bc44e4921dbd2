using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Serverless.Inference;
using Serverless.Model.Training;
using Serverless.Privacy.Ckks;
using Serverless.Privacy.Serialization;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// What an operator PUTs to publish a model version for encrypted inference: the HE-friendly
/// checkpoint (the JSON <c>model train --poly</c> / <c>HeModel.Train</c> writes), the partner tenants
/// entitled to it (<c>["*"]</c>: every partner; required, so no version is open by omission; changed later
/// with <c>PUT .../tenants</c>) and optionally the CKKS parameters (default: <c>HeModel.DefaultParameters()</c>,
/// 128-bit secure) and a record limit.
/// </summary>
public sealed record ModelPublication(JsonElement Checkpoint, CkksParameterSpec? Ckks = null, int? MaxRecords = null, string[]? Tenants = null);

/// <summary>The partner tenants entitled to a model version: its package, key registration and batches. <c>"*"</c> alone: every partner.</summary>
public sealed record ModelEntitlement(string[] Tenants)
{
    public const string EveryPartner = "*";

    public bool Admits(string tenant) => Tenants.Contains(EveryPartner, StringComparer.Ordinal) || Tenants.Contains(tenant, StringComparer.Ordinal);

    /// <summary>Null when the list is valid, else why not.</summary>
    public static string? Invalid(string[]? tenants)
    {
        if (tenants is null || tenants.Length == 0) return "tenants is required: the partner tenants entitled to this version, or [\"*\"] for every partner";
        if (tenants.Length > 10_000) return "tenants names more than 10000 partners";
        if (tenants.Contains(EveryPartner, StringComparer.Ordinal)) return tenants.Length == 1 ? null : "\"*\" stands alone in tenants";
        var bad = tenants.FirstOrDefault(t => !InferenceNames.IsValidId(t));
        return bad is null ? null : $"tenants[{Array.IndexOf(tenants, bad)}] is not a tenant id (1-64 letters, digits, '.', '_' or '-')";
    }
}

/// <summary>
/// CKKS parameters: either ring degree and levels (<c>HeModel.CreateParameters(n, levels)</c>: 29-bit primes,
/// the scale on the chain's fixed point), or the full set by bit sizes and scale as a plan carries them.
/// Primes are derived deterministically from the sizes, so partner and server agree.
/// </summary>
public sealed record CkksParameterSpec(int N, int? Levels = null, int[]? ModulusBits = null, int? SpecialModulusBits = null, double? Scale = null);

/// <summary>
/// Published HE model versions. A version is immutable once published (the same document again is
/// accepted, another is a conflict), stored in the envelope-encrypted <c>checkpoints</c> container,
/// and loaded once per process (the plan's CKKS context is the expensive part).
/// </summary>
public sealed class ModelCatalog(InferenceBlobs blobs, InferenceAudit audit, IOptions<InferenceOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Lazy<Task<HeModel?>>> _models = new(StringComparer.Ordinal);

    internal async Task<(ModelVersionInfo Info, bool Created)> PublishAsync(string version, byte[] document, string actor, CancellationToken cancellationToken)
    {
        var model = Parse(version, document, options.Value.AllowInsecureParametersForTests, out var reason);
        var resource = $"inference-model/{version}";
        if (model is null)
        {
            await audit.RecordAsync(actor, InferenceAuditActions.ModelPublish, resource, AuditOutcome.Denied, $"{RefusalCodes.BadMessage}: {reason}");
            throw new InferenceRefusedException(RefusalCodes.BadMessage, reason!);
        }
        var tenants = JsonSerializer.Deserialize<ModelPublication>(document, JsonSerializerOptions.Web)!.Tenants;
        if (ModelEntitlement.Invalid(tenants) is { } invalid)
        {
            await audit.RecordAsync(actor, InferenceAuditActions.ModelPublish, resource, AuditOutcome.Denied, $"{RefusalCodes.BadMessage}: {invalid}");
            throw new InferenceRefusedException(RefusalCodes.BadMessage, invalid);
        }
        var digest = InferenceBlobs.Sha256Hex(document);
        var info = new ModelVersionInfo(version, actor, time.GetUtcNow(), Convert.ToHexStringLower(model.Plan.ParameterHash.Span), digest);
        var package = PackageJson(info, model);
        try
        {
            // The model first: a package never points at a model that is not there.
            await blobs.Models.PutAsync(InferenceBlobs.ModelBlob(version), new MemoryStream(document, writable: false), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
            var existing = await InferenceBlobs.ReadAllAsync(blobs.Models, InferenceBlobs.ModelBlob(version), options.Value.MaxModelBytes, cancellationToken);
            if (existing is null || InferenceBlobs.Sha256Hex(existing) != digest)
            {
                var conflict = $"model version '{version}' is already published with other content; publish a new version";
                await audit.RecordAsync(actor, InferenceAuditActions.ModelPublish, resource, AuditOutcome.Denied, $"{RefusalCodes.Conflict}: {conflict}");
                throw new InferenceRefusedException(RefusalCodes.Conflict, conflict);
            }
            if (await GetPackageJsonAsync(version, cancellationToken) is { } stored)
                return (JsonSerializer.Deserialize<PackageDto>(stored, JsonSerializerOptions.Web)!.Info, false);
        }
        // The entitlement before the package: a version is never visible without the list that scopes it. Overwriting is safe:
        // until the package exists nobody can have changed it (SetEntitlementAsync needs the package).
        await WriteEntitlementAsync(version, new ModelEntitlement(tenants!), cancellationToken);
        await blobs.Models.PutAsync(InferenceBlobs.PackageBlob(version), new MemoryStream(Encoding.UTF8.GetBytes(package)), cancellationToken: cancellationToken);
        _models.TryRemove(version, out _);
        await audit.RecordAsync(actor, InferenceAuditActions.ModelPublish, resource, AuditOutcome.Success,
            $"{model.Plan}; sha256 {digest}");
        return (info, true);
    }

    /// <summary>The partner tenants entitled to a published version; none (an empty list) when it has no entitlement stored.</summary>
    internal async Task<ModelEntitlement> GetEntitlementAsync(string version, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Models, InferenceBlobs.EntitlementBlob(version), 1024 * 1024, cancellationToken);
        if (bytes is null) return new ModelEntitlement([]);
        var stored = JsonSerializer.Deserialize<ModelEntitlement>(bytes, JsonSerializerOptions.Web);
        return stored?.Tenants is { } t && ModelEntitlement.Invalid(t) is null ? stored : new ModelEntitlement([]);
    }

    /// <summary>Replaces the entitled tenants of a published version (audited): grants and revocations take effect on the next request.</summary>
    /// <exception cref="InferenceRefusedException">unknown version, or an invalid list.</exception>
    internal async Task<ModelEntitlement> SetEntitlementAsync(string version, string[]? tenants, string actor, CancellationToken cancellationToken)
    {
        var resource = $"inference-model/{version}";
        if (ModelEntitlement.Invalid(tenants) is { } invalid)
        {
            await audit.RecordAsync(actor, InferenceAuditActions.ModelEntitle, resource, AuditOutcome.Denied, $"{RefusalCodes.BadMessage}: {invalid}");
            throw new InferenceRefusedException(RefusalCodes.BadMessage, invalid);
        }
        if (await GetPackageJsonAsync(version, cancellationToken) is null)
            throw new InferenceRefusedException(RefusalCodes.UnknownModel, $"model version '{version}' has not been published for inference");
        var entitlement = new ModelEntitlement(tenants!);
        await WriteEntitlementAsync(version, entitlement, cancellationToken);
        await audit.RecordAsync(actor, InferenceAuditActions.ModelEntitle, resource, AuditOutcome.Success, $"{entitlement.Tenants.Length} tenant(s): {string.Join(",", entitlement.Tenants)}");
        return entitlement;
    }

    private Task WriteEntitlementAsync(string version, ModelEntitlement entitlement, CancellationToken cancellationToken) =>
        blobs.Models.PutAsync(InferenceBlobs.EntitlementBlob(version),
            new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(entitlement with { Tenants = entitlement.Tenants.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray() }, JsonSerializerOptions.Web)),
            cancellationToken: cancellationToken);

    /// <summary>Refuses <paramref name="tenant"/> when it is not entitled to <paramref name="version"/>.</summary>
    /// <exception cref="InferenceRefusedException">with <see cref="RefusalCodes.NotEntitled"/>.</exception>
    internal async Task EnsureEntitledAsync(string version, string tenant, CancellationToken cancellationToken)
    {
        if (!(await GetEntitlementAsync(version, cancellationToken)).Admits(tenant))
            throw new InferenceRefusedException(RefusalCodes.NotEntitled, $"tenant '{tenant}' is not entitled to model version '{version}'");
    }

    internal async Task<string?> GetPackageJsonAsync(string version, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Models, InferenceBlobs.PackageBlob(version), options.Value.MaxModelBytes, cancellationToken);
        return bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>The model of a published version, or null when there is none; loaded once and shared.</summary>
    internal async Task<HeModel?> GetAsync(string version, CancellationToken cancellationToken)
    {
        var lazy = _models.GetOrAdd(version, v => new Lazy<Task<HeModel?>>(() => LoadAsync(v)));
        HeModel? model;
        try
        {
            model = await lazy.Value.WaitAsync(cancellationToken);
        }
        catch
        {
            _models.TryRemove(new KeyValuePair<string, Lazy<Task<HeModel?>>>(version, lazy)); // a storage hiccup is not remembered
            throw;
        }
        if (model is null) _models.TryRemove(new KeyValuePair<string, Lazy<Task<HeModel?>>>(version, lazy)); // not published yet: ask storage again next time
        return model;
    }

    private async Task<HeModel?> LoadAsync(string version)
    {
        var document = await InferenceBlobs.ReadAllAsync(blobs.Models, InferenceBlobs.ModelBlob(version), options.Value.MaxModelBytes, CancellationToken.None);
        if (document is null) return null;
        return Parse(version, document, options.Value.AllowInsecureParametersForTests, out var reason)
            ?? throw new InvalidDataException($"stored model version '{version}' does not load: {reason}");
    }

    /// <summary>Validates a publication: JSON shape, checkpoint, HE-friendliness, parameters deep enough. Null with the reason otherwise.</summary>
    internal static HeModel? Parse(string version, byte[] document, bool allowInsecure, out string? reason)
    {
        reason = null;
        try
        {
            var publication = JsonSerializer.Deserialize<ModelPublication>(document, JsonSerializerOptions.Web);
            if (publication is null || publication.Checkpoint.ValueKind != JsonValueKind.Object)
            {
                reason = "the body must be a JSON object with a 'checkpoint' object (and optional 'ckks', 'maxRecords')";
                return null;
            }
            var checkpoint = ModelCheckpoint.FromJson(publication.Checkpoint.GetRawText()).Validated();
            CkksParameters? parameters = null;
            if (publication.Ckks is { } spec)
            {
                parameters = spec switch
                {
                    { Levels: { } levels, ModulusBits: null } => HeModel.CreateParameters(spec.N, levels, allowInsecureForTests: allowInsecure),
                    { Levels: null, ModulusBits: { } bits, SpecialModulusBits: { } special, Scale: { } scale } => CkksParameters.Create(spec.N, bits, special, scale, allowInsecure),
                    _ => throw new ArgumentException("ckks: give either n and levels, or n, modulusBits, specialModulusBits and scale"),
                };
                if (parameters.IsInsecureForTests && !allowInsecure)
                {
                    reason = "the CKKS parameters exceed the 128-bit security bound";
                    return null;
                }
            }
            return HeModel.Create(checkpoint, parameters, version, publication.MaxRecords ?? EvaluationPlan.DefaultMaxRecords);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or ArgumentException or HeFormatException or FormatException)
        {
            reason = e.Message;
            return null;
        }
    }

    private static string PackageJson(ModelVersionInfo info, HeModel model) => new JsonObject
    {
        ["info"] = JsonSerializer.SerializeToNode(info, JsonSerializerOptions.Web),
        ["plan"] = JsonNode.Parse(model.Plan.ToJson()),
        ["preprocessor"] = JsonNode.Parse(model.Checkpoint.Preprocessor.ToJson()),
    }.ToJsonString();

    private sealed record PackageDto(ModelVersionInfo Info);
}
