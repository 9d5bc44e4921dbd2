using Serverless.Functions.Inference;
using Serverless.Functions.Inference.Services;
using Serverless.Runtime.Hosting.HostJson;

// In the DI namespace, as AddXxx extensions conventionally are, so Program.cs needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Encrypted inference in the function app: <c>builder.Services.AddInference();</c> (after
/// <c>AddServerlessSecurity()</c> and <c>AddDurableTask()</c>, whose audit log, access policy and
/// durable client it uses). The functions themselves are indexed with the app's assembly.
/// </summary>
public static class InferenceModule
{
    public static IServiceCollection AddInference(this IServiceCollection services)
    {
        services.AddHostJsonSection<InferenceOptions>("extensions.inference", InferenceOptions.Validate);
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
