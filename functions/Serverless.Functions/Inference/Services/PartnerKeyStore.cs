using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Serverless.Inference;
using Serverless.Privacy.Serialization;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference.Services;

/// <summary>
/// Partners' public evaluation keys, one bundle per (tenant, model version), validated against the
/// version's plan before they are stored. A key bundle belongs to the first tenant that registers it
/// (index <c>key-ids/{keyId}</c>), so a partner cannot register, or submit under, another partner's keys.
/// </summary>
public sealed class PartnerKeyStore(InferenceBlobs blobs, ModelCatalog catalog, InferenceAudit audit, IOptions<InferenceOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<(string Tenant, string Version, string KeyId), EvaluationKeys> _loaded = new();

    internal async Task<(KeyRegistration Registration, bool Created)> RegisterAsync(string tenant, string version, byte[] bundle, string actor, CancellationToken cancellationToken)
    {
        var model = await catalog.GetAsync(version, cancellationToken)
            ?? throw new InferenceRefusedException(RefusalCodes.UnknownModel, $"model version '{version}' has not been published for inference");
        await catalog.EnsureEntitledAsync(version, tenant, cancellationToken);
        EvaluationKeys keys;
        try
        {
            CheckParameters(bundle, model.Plan, "the evaluation keys");
            keys = EvaluationKeys.Read(bundle, model.Plan);
        }
        catch (HeFormatException e)
        {
            throw new InferenceRefusedException(RefusalCodes.MalformedBatch, "the evaluation keys are malformed: " + e.Message);
        }
        var keyId = keys.KeyIdHex.ToLowerInvariant();

        // Claim the key id for this tenant (first registration wins, across tenants and versions).
        var owner = new KeyOwner(tenant, version);
        try
        {
            await blobs.Keys.PutAsync(InferenceBlobs.KeyIdBlob(keyId), Json(owner), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
            var existing = await ReadOwnerAsync(keyId, cancellationToken);
            if (existing is not null && existing.Tenant != tenant)
                throw new InferenceRefusedException(RefusalCodes.ForeignKeys, $"these evaluation keys (key id {keyId[..16]}…) are registered by another partner; generate your own with 'partner keygen'");
        }

        var current = await GetRegistrationAsync(tenant, version, cancellationToken);
        if (current is not null)
        {
            if (current.KeyId == keyId) return (current, false);
            throw new InferenceRefusedException(RefusalCodes.Conflict,
                $"tenant '{tenant}' already registered other keys (key id {current.KeyId[..16]}…) for model version '{version}'; batches stay bound to them");
        }

        var registration = new KeyRegistration(tenant, version, keyId, Convert.ToHexStringLower(model.Plan.ParameterHash.Span), bundle.Length, time.GetUtcNow(), actor);
        await blobs.Keys.PutAsync(InferenceBlobs.KeyBundleBlob(tenant, version), new MemoryStream(bundle, writable: false), cancellationToken: cancellationToken);
        try
        {
            await blobs.Keys.PutAsync(InferenceBlobs.RegistrationBlob(tenant, version), Json(registration), BlobCondition.MustNotExist, cancellationToken);
        }
        catch (BlobConditionFailedException)
        {
            // A concurrent registration of the same tenant won; answer from it.
            var winner = await GetRegistrationAsync(tenant, version, cancellationToken);
            if (winner?.KeyId == keyId) return (winner, false);
            throw new InferenceRefusedException(RefusalCodes.Conflict, $"tenant '{tenant}' registered other keys for model version '{version}' at the same time");
        }
        await audit.RecordAsync(actor, InferenceAuditActions.KeysRegister, $"keys/{tenant}/{version}", AuditOutcome.Success, $"key id {keyId}, {bundle.Length} bytes");
        return (registration, true);
    }

    internal async Task<KeyRegistration?> GetRegistrationAsync(string tenant, string version, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Keys, InferenceBlobs.RegistrationBlob(tenant, version), 64 * 1024, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<KeyRegistration>(bytes, JsonSerializerOptions.Web);
    }

    /// <summary>Which tenant registered a key id, or null when nobody did.</summary>
    internal async Task<KeyOwner?> ReadOwnerAsync(string keyIdHex, CancellationToken cancellationToken)
    {
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Keys, InferenceBlobs.KeyIdBlob(keyIdHex.ToLowerInvariant()), 64 * 1024, cancellationToken);
        return bytes is null ? null : JsonSerializer.Deserialize<KeyOwner>(bytes, JsonSerializerOptions.Web);
    }

    /// <summary>The tenant's evaluation keys for the version (validated again on load, cached per key id).</summary>
    internal async Task<EvaluationKeys> LoadAsync(KeyRegistration registration, EvaluationPlan plan, CancellationToken cancellationToken)
    {
        var cacheKey = (registration.Tenant, registration.ModelVersion, registration.KeyId);
        if (_loaded.TryGetValue(cacheKey, out var cached)) return cached;
        var bytes = await InferenceBlobs.ReadAllAsync(blobs.Keys, InferenceBlobs.KeyBundleBlob(registration.Tenant, registration.ModelVersion), options.Value.MaxKeyBundleBytes, cancellationToken)
            ?? throw new InvalidOperationException($"the key bundle of {registration.Tenant}/{registration.ModelVersion} is missing");
        var keys = EvaluationKeys.Read(bytes, plan);
        if (!string.Equals(keys.KeyIdHex, registration.KeyId, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"the stored key bundle of {registration.Tenant}/{registration.ModelVersion} does not match its registration");
        return _loaded.GetOrAdd(cacheKey, keys);
    }

    /// <summary>
    /// Compares the blob header's parameter hash with the plan's before parsing, so a bundle or batch made
    /// under other CKKS parameters is named as such (inference blobs start with "HEIN", u16 version, u8 kind, then the 32-byte hash).
    /// </summary>
    internal static void CheckParameters(ReadOnlySpan<byte> blob, EvaluationPlan plan, string what)
    {
        if (blob.Length < 39 || !blob[..4].SequenceEqual("HEIN"u8)) return; // not ours at all: the reader says why
        var hash = blob.Slice(7, 32);
        if (!hash.SequenceEqual(plan.ParameterHash.Span))
            throw new InferenceRefusedException(RefusalCodes.WrongParameters,
                $"{what} were made under other CKKS parameters (hash {Convert.ToHexStringLower(hash)[..16]}…) than model version '{plan.ModelVersion}' uses " +
                $"(hash {Convert.ToHexStringLower(plan.ParameterHash.Span)[..16]}…, N = {plan.Parameters.N}); download the version's package and generate keys for it");
    }

    private static MemoryStream Json<T>(T value) => new(JsonSerializer.SerializeToUtf8Bytes(value, JsonSerializerOptions.Web));
}

/// <summary>The tenant (and the version it was first registered for) that owns a key id.</summary>
internal sealed record KeyOwner(string Tenant, string ModelVersion);
