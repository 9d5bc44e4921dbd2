using Microsoft.AspNetCore.Authorization;
using Serverless.Federation.Rounds;
using Serverless.Functions.Federations.Services;
using static Serverless.Functions.Federations.Services.FederationHttp;

namespace Serverless.Functions.Federations;

/// <summary>
/// Client enrollment. Anonymous at the HTTP layer: the proof is possession of a dev-CA client
/// certificate's key over a single-use nonce (decisions/0007 says what production does instead).
/// </summary>
public sealed class EnrollmentFunctions(EnrollmentService enrollment)
{
    /// <summary>Removes an enrolled client: its tokens stop working, its certificate is revoked for the federation (audited).</summary>
    [Function("RemoveFederationClient")]
    [RequirePermission(Permissions.FederationManage, ResourceKind = ResourceRef.Federation, ResourceParameter = "federation")]
    public async Task<IResult> Remove([HttpTrigger(AuthorizationLevel.Anonymous, "delete", Route = RoundRoutes.Templates.Federation + "/clients/{clientId}")] HttpRequest request, string federation, string clientId,
        FunctionContext context, CancellationToken ct) =>
        await enrollment.RemoveAsync(federation, clientId, Actor(request), null, context.InvocationId, ct)
            ? Results.NoContent()
            : NotFound($"Client '{clientId}' is not enrolled in federation '{federation}'.");

    [Function("EnrollmentChallenge"), AllowAnonymous]
    public async Task<IResult> Challenge([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Challenge)] HttpRequest request, string federation, CancellationToken ct) =>
        await enrollment.ChallengeAsync(federation, ct) is { } challenge ? Json(challenge) : NotFound($"Federation '{federation}' does not exist.");

    [Function("Enroll"), AllowAnonymous]
    public async Task<IResult> Enroll([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = RoundRoutes.Templates.Enroll)] HttpRequest request, string federation, FunctionContext context, CancellationToken ct)
    {
        var body = await ReadAsync<EnrollmentRequest>(request, 64 * 1024, ct);
        if (!body.IsValid) return body.Problem!;
        try
        {
            return Json(await enrollment.EnrollAsync(federation, body.Value!, context.InvocationId, ct));
        }
        catch (EnrollmentRefusedException e)
        {
            return Problem(e.Status, e.Title, e.Message);
        }
    }
}
