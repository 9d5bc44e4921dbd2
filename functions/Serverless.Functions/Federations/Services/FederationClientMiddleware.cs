using System.Globalization;
using Microsoft.Azure.Functions.Worker.Middleware;
using Serverless.Functions.Hosting;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// The one place where a federation client's call is held to <see cref="ClientTokenBinding"/>: every
/// HTTP function a client's token gets past <see cref="AuthorizationMiddleware"/> with, the read-only
/// ones (the federation, its rounds, a round's status) as much as the round protocol's posts. So over
/// mutual TLS a stolen token alone reads nothing either. Runs after the authorization gate, which has
/// already refused what the client's role may not do; enrollment is anonymous and is not bound (it is
/// where the certificate is issued). The federation is the route's; on routes without one (the list of
/// federations) it is the one the token was issued for.
/// </summary>
internal sealed class FederationClientMiddleware(FederationStore store, FederationOptions options, FederationCertificateAuthority ca, IAuditLog audit)
    : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        if (context.GetHttpContext() is not { } http || !ClientTokenBinding.IsClient(http.User))
        {
            await next(context);
            return;
        }
        var routed = context.BindingContext.BindingData.TryGetValue("federation", out var value) ? Convert.ToString(value, CultureInfo.InvariantCulture) : null;
        var federation = routed ?? http.User.FindFirst(SecurityClaims.Federation)?.Value;
        var state = federation is null ? null : await store.TryGetStateAsync(federation, context.CancellationToken);
        ClientRefusal? refusal;
        if (state is null)
        {
            // A route's unknown federation is the function's 404; a token naming none that exists binds nothing.
            refusal = routed is not null ? null
                : new ClientRefusal(StatusCodes.Status403Forbidden, "Token not bound to this client", "The token names no federation that exists; enroll to get one.");
        }
        else
        {
            refusal = await ClientTokenBinding.CheckAsync(http, state, options, ca);
        }
        if (refusal is not null)
        {
            await audit.AppendAsync(new AuditEvent(http.User.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous", AuditActions.AccessDenied,
                federation is null ? context.FunctionDefinition.Name : new ResourceRef(ResourceRef.Federation, federation).ToString(), AuditOutcome.Denied, context.InvocationId, refusal.Title));
            await FederationHttp.Problem(refusal.Status, refusal.Title, refusal.Detail).ExecuteAsync(http);
            return;
        }
        await next(context);
    }
}
