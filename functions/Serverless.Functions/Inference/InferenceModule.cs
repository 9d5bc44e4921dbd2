using Serverless.Functions.Inference;
using Serverless.Functions.Inference.Services;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

// In the DI namespace, as AddXxx extensions conventionally are, so Program.cs needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Encrypted inference in the function app: <c>builder.Services.AddInference();</c> (after
/// the security layer, whose audit log and access policy it uses; settings <c>Inference__*</c>). The functions themselves are indexed with the app's assembly.
/// </summary>
public static class InferenceModule
{
    public static IServiceCollection AddInference(this IServiceCollection services, IConfiguration settings)
    {
        services.AddOptions<InferenceOptions>().Bind(settings.GetSection("Inference"))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<InferenceOptions>>(new InferenceOptionsValidation());
        services.AddSingleton<InferenceBlobs>();
        services.AddSingleton<InferenceAudit>();
        services.AddSingleton<SubmissionAuthenticator>();
        services.AddSingleton<BatchSubmissions>();
        services.AddSingleton<ModelCatalog>();
        services.AddSingleton<PartnerKeyStore>();
        services.AddSingleton<PartnerQuota>();
        services.AddSingleton<BatchProcessor>();
        return services;
    }
}

/// <summary>Names every wrong Inference__* setting at start.</summary>
internal sealed class InferenceOptionsValidation : IValidateOptions<InferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, InferenceOptions options) =>
        options.Problems().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}
