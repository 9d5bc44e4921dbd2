using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Serverless.Fraud.Tokenization;
using Serverless.Functions.Fraud;
using Serverless.Functions.Fraud.Services;
using Serverless.Functions.Hosting;
using Serverless.Security.Hosting;
using Serverless.Security.Keys;

// In the DI namespace, as AddXxx extensions conventionally are, so Program.cs needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Real-time fraud scoring in the function app: <c>builder.Services.AddFraud(configuration);</c> after the
/// security layer (its vault, audit log and encrypted checkpoints container); settings <c>Fraud__*</c>.
/// </summary>
public static class FraudModule
{
    /// <summary>The card-token HMAC key: its own data key, wrapped by the pseudonymization KEK, in the <c>keys</c> container.</summary>
    public const string CardTokenKeyBlob = "fraud-card-token.key.json";

    public static IServiceCollection AddFraud(this IServiceCollection services, IConfiguration settings)
    {
        services.AddOptions<FraudOptions>().Bind(settings.GetSection("Fraud")).ValidateOnStart();
        services.AddSingleton<IValidateOptions<FraudOptions>>(new FraudOptionsValidation());
        services.AddSingleton(sp =>
        {
            var key = WrappedDataKey.LoadOrCreateAsync(sp.GetRequiredService<IKeyVault>(), sp.GetRequiredService<SecurityOptions>().PseudonymizationKeyName,
                sp.GetRequiredService<RawBlobStoreProvider>().Provider.GetContainer("keys"), CardTokenKeyBlob).GetAwaiter().GetResult();
            try { return new CardTokenizer(key); }
            finally { System.Security.Cryptography.CryptographicOperations.ZeroMemory(key); }
        });
        services.AddSingleton<FraudStore>();
        services.AddSingleton<FraudModelRegistry>();
        services.AddSingleton<FraudScoring>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IComplianceCheckSource, FraudScoring>(sp => sp.GetRequiredService<FraudScoring>()));
        return services;
    }
}

/// <summary>Names every wrong Fraud__* setting at start.</summary>
internal sealed class FraudOptionsValidation : IValidateOptions<FraudOptions>
{
    public ValidateOptionsResult Validate(string? name, FraudOptions options) =>
        options.Problems().ToList() is { Count: > 0 } problems ? ValidateOptionsResult.Fail(problems) : ValidateOptionsResult.Success;
}
