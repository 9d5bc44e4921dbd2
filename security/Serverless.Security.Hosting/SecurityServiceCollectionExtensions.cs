using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Certificate;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Serverless.Security;

/// <summary>
/// Wiring for an ASP.NET Core host: <c>AddServerlessAuthentication</c> (bearer tokens and client
/// certificates behind one policy scheme) and <c>AddServerlessAuthorization</c> (permissions as
/// policies, tenant scoping, deny by default, ProblemDetails for 401/403).
/// </summary>
public static class SecurityServiceCollectionExtensions
{
    /// <summary>The default scheme: forwards to the client-certificate scheme when the connection has one, else to bearer tokens.</summary>
    public const string DefaultScheme = "Serverless";

    /// <summary>HttpContext.Items key set once an authentication failure of the request was audited (so it is audited once).</summary>
    public const string AuthenticationFailureAuditedKey = "serverless.security.auth-failure-audited";

    /// <param name="signingKeys">Validation keys; when null, the <see cref="VaultSigningKeys"/> registered in DI is used.</param>
    public static AuthenticationBuilder AddServerlessAuthentication(this IServiceCollection services, TokenOptions tokenOptions, VaultSigningKeys? signingKeys = null,
        CertificateTrust? clientTrust = null, ClientCertificateRegistry? clientRegistry = null)
    {
        ArgumentNullException.ThrowIfNull(tokenOptions);
        var builder = services.AddAuthentication(DefaultScheme);
        builder.AddPolicyScheme(DefaultScheme, "Bearer token or client certificate", o =>
            o.ForwardDefaultSelector = context => clientTrust is not null && context.Connection.ClientCertificate is not null
                ? ClientCertificateAuthentication.Scheme
                : JwtBearerDefaults.AuthenticationScheme);
        builder.AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            if (signingKeys is not null) o.TokenValidationParameters = TokenValidation.CreateParameters(tokenOptions, signingKeys);
            o.Events = new JwtBearerEvents
            {
                // A signing-key version disabled in the vault (by another instance, or by hand) stops validating within MaxAge, without a restart.
                OnMessageReceived = async context =>
                {
                    if ((signingKeys ?? context.HttpContext.RequestServices.GetService<VaultSigningKeys>()) is { } keys)
                        await keys.EnsureFreshAsync(context.HttpContext.RequestAborted);
                },
                OnAuthenticationFailed = async context =>
                {
                    context.HttpContext.Items[AuthenticationFailureAuditedKey] = true;
                    if (context.HttpContext.RequestServices.GetService<IAuditLog>() is { } audit)
                        await audit.AppendAsync(new AuditEvent("anonymous", AuditActions.AuthenticationFailed, context.Request.Path,
                            AuditOutcome.Failure, context.HttpContext.TraceIdentifier, context.Exception.GetType().Name));
                },
            };
        });
        if (signingKeys is null)
        {
            services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
                .Configure<VaultSigningKeys>((o, keys) => o.TokenValidationParameters = TokenValidation.CreateParameters(tokenOptions, keys));
        }
        if (clientTrust is not null)
        {
            var registry = clientRegistry ?? new ClientCertificateRegistry();
            builder.AddCertificate(ClientCertificateAuthentication.Scheme, o =>
            {
                ClientCertificateAuthentication.Configure(o, clientTrust.Root);
                o.Events = new CertificateAuthenticationEvents { OnCertificateValidated = c => ClientCertificateAuthentication.ResolveRegisteredClient(c, registry) };
            });
        }
        return builder;
    }

    /// <summary>
    /// Permission policies from <see cref="RequirePermissionAttribute"/>, the role table (default:
    /// the embedded roles.json), an in-memory <see cref="IResourceOwnership"/> unless one is
    /// registered, and a fallback policy that refuses endpoints declaring no permission.
    /// </summary>
    /// <param name="denyUndeclaredEndpoints">
    /// Install the deny-by-default fallback policy for ASP.NET Core endpoints. The function app passes
    /// false: its functions are guarded by the app's worker middleware (functions/Serverless.Functions/Hosting/AuthorizationMiddleware.cs).
    /// </param>
    public static IServiceCollection AddServerlessAuthorization(this IServiceCollection services, RolePermissionTable? table = null, bool denyUndeclaredEndpoints = true)
    {
        services.TryAddSingleton(table ?? RolePermissionTable.Default);
        services.TryAddSingleton<InMemoryResourceOwnership>();
        services.TryAddSingleton<IResourceOwnership>(sp => sp.GetRequiredService<InMemoryResourceOwnership>());
        services.TryAddSingleton<AccessPolicy>();
        services.AddSingleton<IAuthorizationHandler, PermissionAuthorizationHandler>();
        services.AddSingleton<IAuthorizationPolicyProvider, PermissionPolicyProvider>();
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, ProblemDetailsAuthorizationResultHandler>();
        services.AddAuthorization(o =>
        {
            if (denyUndeclaredEndpoints) o.FallbackPolicy = new AuthorizationPolicyBuilder().AddRequirements(new DenyUndeclaredRequirement()).Build();
        });
        services.AddProblemDetails();
        return services;
    }
}
