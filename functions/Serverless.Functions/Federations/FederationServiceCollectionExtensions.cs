using Serverless.Functions.Federations.Services;
using Microsoft.AspNetCore.Authentication.Certificate;
using Serverless.Security.Hosting;

// In the DI namespace, as AddXxx extensions conventionally are, so Program.cs needs no extra using.
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registration of the federations module: its services; the functions are this assembly's.</summary>
public static class FederationServiceCollectionExtensions
{
    /// <summary>
    /// Adds the federation store, enrollment, rounds and the schedule, and the persisted roster as the
    /// tenant check for federations. Call after <c>AddSecurityServices()</c>: the hold-out container
    /// <c>datasets</c> joins its envelope-encrypted containers.
    /// </summary>
    public static IServiceCollection AddFederations(this IServiceCollection services, Action<FederationOptions>? configure = null)
    {
        var options = new FederationOptions();
        configure?.Invoke(options);
        var security = services.LastOrDefault(d => d.ServiceType == typeof(SecurityOptions))?.ImplementationInstance as SecurityOptions
            ?? throw new InvalidOperationException("AddFederations needs AddSecurityServices() first (checkpoints and hold-out sets are stored encrypted).");
        security.EncryptedContainers.Add(FederationStore.DatasetsContainer);
        security.EncryptedContainers.Add(FederationStore.ModelsContainer);
        services.AddSingleton(options);
        services.AddSingleton<FederationStore>();
        services.AddSingleton<FederationCertificateAuthority>();
        // The certificate a client presents over mutual TLS (forwarded by the front end), checked against the federation's CA;
        // ClientTokenBinding asks for it only once the CA exists, so its options are never built without one.
        services.AddAuthentication().AddCertificate(ClientCertificateAuthentication.Scheme, _ => { });
        services.AddOptions<CertificateAuthenticationOptions>(ClientCertificateAuthentication.Scheme)
            .Configure<FederationCertificateAuthority>((o, ca) => ClientCertificateAuthentication.Configure(o, ca.TryGetTrust()!.Root));
        services.AddSingleton<EnrollmentService>();
        services.AddSingleton<RoundService>();
        services.AddSingleton<FederationScheduler>();
        services.AddSingleton<IResourceOwnership>(sp => new FederationOwnership(sp.GetRequiredService<FederationStore>(), sp.GetRequiredService<InMemoryResourceOwnership>()));
        return services;
    }
}
