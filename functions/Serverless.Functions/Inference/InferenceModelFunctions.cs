using System.Security.Claims;
using Microsoft.Extensions.Options;
using Serverless.Functions.Inference.Services;
using Serverless.Security.Hosting;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Inference;

/// <summary>
/// Model versions for encrypted inference: an operator publishes an HE-friendly checkpoint (stored in
/// the envelope-encrypted <c>checkpoints</c> container); partners download the version's package
/// (evaluation plan and preprocessing statistics), which they need to encrypt.
/// </summary>
public sealed class InferenceModelFunctions(ModelCatalog catalog, IOptions<InferenceOptions> options)
{
    /// <summary>PUT the HE-friendly model checkpoint (JSON): 201 with the version's info; 400 for a model that is not HE-friendly; 409 when the version exists with other content.</summary>
    [Function("PublishInferenceModel")]
    [RequirePermission(Permissions.ModelPromote)]
    [RequestBodyLimit(InferenceLimits.MaxHttpBodyBytes)]
    public async Task<IResult> Publish([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = InferenceRoutes.Templates.Model)] HttpRequest request, string version,
        CancellationToken cancellationToken)
    {
        var user = request.HttpContext.User;
        if (!InferenceNames.IsValidId(version))
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "the model version must be 1-64 letters, digits, '.', '_' or '-'");
        var body = await BoundedBody.ReadAsync(request, options.Value.MaxModelBytes, cancellationToken);
        if (body is null) return InferenceRefusedException.Problem(RefusalCodes.BatchTooLarge, $"the model is over the limit of {options.Value.MaxModelBytes} bytes");
        try
        {
            var (info, created) = await catalog.PublishAsync(version, body, SubmissionAuthenticator.Subject(user), cancellationToken);
            return created ? Results.Created($"/api/inference/models/{version}", info) : Results.Ok(info);
        }
        catch (InferenceRefusedException e)
        {
            return InferenceRefusedException.Problem(e.Code, e.Message);
        }
    }

    /// <summary>
    /// GET the version's partner package (JSON: info, evaluation plan, preprocessing statistics); 404 when unknown, 403 for a
    /// partner whose tenant is not entitled to it (the only role with inference.read that is scoped to a tenant).
    /// </summary>
    [Function("GetInferenceModel")]
    [RequirePermission(Permissions.InferenceRead)]
    public async Task<IResult> Get([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = InferenceRoutes.Templates.Model)] HttpRequest request, string version, CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(version))
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "the model version must be 1-64 letters, digits, '.', '_' or '-'");
        var package = await catalog.GetPackageJsonAsync(version, cancellationToken);
        if (package is null) return InferenceRefusedException.Problem(RefusalCodes.UnknownModel, $"model version '{version}' has not been published for inference");
        var user = request.HttpContext.User;
        if (user.FindAll(SecurityClaims.Role).Any(r => r.Value == Roles.Partner))
        {
            var tenant = user.FindFirst(SecurityClaims.Tenant)?.Value ?? "";
            if (!(await catalog.GetEntitlementAsync(version, cancellationToken)).Admits(tenant))
                return InferenceRefusedException.Problem(RefusalCodes.NotEntitled, $"tenant '{tenant}' is not entitled to model version '{version}'");
        }
        return Results.Text(package, "application/json");
    }

    /// <summary>PUT the partner tenants entitled to a published version (<c>{"tenants": ["a", "b"]}</c>, or <c>["*"]</c>): replaces the list, audited.</summary>
    [Function("SetInferenceModelTenants")]
    [RequirePermission(Permissions.ModelPromote)]
    [RequestBodyLimit(1024 * 1024)]
    public async Task<IResult> SetTenants([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = InferenceRoutes.Templates.ModelTenants)] HttpRequest request, string version,
        CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(version))
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "the model version must be 1-64 letters, digits, '.', '_' or '-'");
        ModelEntitlement? body;
        try
        {
            body = await System.Text.Json.JsonSerializer.DeserializeAsync<ModelEntitlement>(request.Body, System.Text.Json.JsonSerializerOptions.Web, cancellationToken);
        }
        catch (System.Text.Json.JsonException e)
        {
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "the body is not {\"tenants\": [...]}: " + e.Message);
        }
        try
        {
            return Results.Ok(await catalog.SetEntitlementAsync(version, body?.Tenants, SubmissionAuthenticator.Subject(request.HttpContext.User), cancellationToken));
        }
        catch (InferenceRefusedException e)
        {
            return InferenceRefusedException.Problem(e.Code, e.Message);
        }
    }
}

/// <summary>
/// Partner onboarding: a partner registers its public evaluation keys (public key, relinearization
/// key, the Galois keys the plan needs) for a model version, under its own tenant only.
/// </summary>
public sealed class PartnerKeyFunctions(PartnerKeyStore keys, InferenceAudit audit, IOptions<InferenceOptions> options)
{
    /// <summary>
    /// PUT the evaluation-key bundle (application/octet-stream): 201 with the registration; 200 when the
    /// same bundle is registered again; 400 when its parameters do not match the plan; 404 unknown model
    /// version; 409 when other keys are registered already. Refusals are audited.
    /// </summary>
    [Function("RegisterPartnerKeys")]
    [RequirePermission(Permissions.InferenceSubmit, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    [RequestBodyLimit(InferenceLimits.MaxHttpBodyBytes)]
    public async Task<IResult> Register([HttpTrigger(AuthorizationLevel.Anonymous, "put", Route = InferenceRoutes.Templates.PartnerKeys)] HttpRequest request, string tenant, string version,
        CancellationToken cancellationToken)
    {
        var user = request.HttpContext.User;
        var actor = SubmissionAuthenticator.Subject(user);
        var resource = $"keys/{tenant}/{version}";
        if (!InferenceNames.IsValidId(tenant) || !InferenceNames.IsValidId(version))
            return await RefuseAsync(actor, resource, RefusalCodes.BadMessage, "tenant and model version must each be 1-64 letters, digits, '.', '_' or '-'", request);
        var body = await BoundedBody.ReadAsync(request, options.Value.MaxKeyBundleBytes, cancellationToken);
        if (body is null)
            return await RefuseAsync(actor, resource, RefusalCodes.BatchTooLarge, $"the key bundle is over the limit of {options.Value.MaxKeyBundleBytes} bytes", request);
        try
        {
            var (registration, created) = await keys.RegisterAsync(tenant, version, body, actor, cancellationToken);
            return created ? Results.Created($"/api/partners/{tenant}/keys/{version}", registration) : Results.Ok(registration);
        }
        catch (InferenceRefusedException e)
        {
            return await RefuseAsync(actor, resource, e.Code, e.Message, request);
        }
    }

    /// <summary>GET the registration (key id, parameter hash, size, when and by whom); 404 when none.</summary>
    [Function("GetPartnerKeys")]
    [RequirePermission(Permissions.InferenceRead, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    public async Task<IResult> Get([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = InferenceRoutes.Templates.PartnerKeys)] HttpRequest request, string tenant, string version,
        CancellationToken cancellationToken)
    {
        if (!InferenceNames.IsValidId(tenant) || !InferenceNames.IsValidId(version))
            return InferenceRefusedException.Problem(RefusalCodes.BadMessage, "tenant and model version must each be 1-64 letters, digits, '.', '_' or '-'");
        var registration = await keys.GetRegistrationAsync(tenant, version, cancellationToken);
        return registration is null
            ? InferenceRefusedException.Problem(RefusalCodes.KeysNotRegistered, $"tenant '{tenant}' has registered no keys for model version '{version}'", StatusCodes.Status404NotFound)
            : Results.Ok(registration);
    }

    private async Task<IResult> RefuseAsync(string actor, string resource, string code, string reason, HttpRequest request)
    {
        await audit.RecordAsync(actor, InferenceAuditActions.KeysRegister, resource, Serverless.Security.Audit.AuditOutcome.Denied, $"{code}: {reason}", request.HttpContext.TraceIdentifier);
        return InferenceRefusedException.Problem(code, reason);
    }
}
