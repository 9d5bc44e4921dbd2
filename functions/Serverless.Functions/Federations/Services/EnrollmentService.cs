using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Serverless.Federation.Rounds;

namespace Serverless.Functions.Federations.Services;

/// <summary>Why an enrollment was refused: the HTTP status and a one-line reason.</summary>
internal sealed class EnrollmentRefusedException(int status, string title, string message) : Exception(message)
{
    public int Status { get; } = status;
    public string Title { get; } = title;
}

/// <summary>
/// Enrollment bound to a client certificate, without a mutual-TLS port: the client proves possession
/// of a dev-CA client certificate's key by signing a single-use server nonce
/// (<see cref="EnrollmentProof"/>); the server checks the chain (clientAuth usage, validity) against
/// the dev CA, the CN, the federation's allow list and the signature, binds the client id to the
/// certificate's thumbprint, and issues a bearer token (role federation-client, tenant = client id).
/// </summary>
public sealed class EnrollmentService(FederationStore store, FederationOptions options, FederationCertificateAuthority ca, DevTokenIssuer tokens,
    IAuditLog audit, TimeProvider time)
{
    public const string ClientRole = "federation-client";

    public async Task<EnrollmentChallenge?> ChallengeAsync(string federation, CancellationToken ct)
    {
        if (await store.TryGetStateAsync(federation, ct) is null) return null;
        var now = time.GetUtcNow();
        var expires = now + options.NonceLifetime;
        // The expiry leads the nonce so expired, never-used nonces can be swept by name alone.
        var nonce = $"{expires.ToUnixTimeSeconds()}-{Base64Url(RandomNumberGenerator.GetBytes(32))}";
        await store.PutNonceAsync(federation, nonce, expires, ct);
        await store.SweepNoncesAsync(federation, now, ct);
        return new EnrollmentChallenge(nonce, expires);
    }

    /// <exception cref="EnrollmentRefusedException">the proof or the certificate does not hold.</exception>
    public async Task<EnrollmentResponse> EnrollAsync(string federation, EnrollmentRequest request, string? requestId, CancellationToken ct)
    {
        var state = await store.TryGetStateAsync(federation, ct) ?? throw new EnrollmentRefusedException(404, "Not found", $"Federation '{federation}' does not exist.");
        if (!FederationRules.IsValidClientId(request.ClientId))
            throw new EnrollmentRefusedException(400, "Invalid client id", "clientId must be 1-63 letters, digits, '.', '_' or '-'.");
        if (string.IsNullOrEmpty(request.Nonce) || request.Nonce.Length > 64 || !request.Nonce.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            throw new EnrollmentRefusedException(400, "Invalid nonce", "nonce must be the value of a challenge.");
        try
        {
            var expires = await store.TakeNonceAsync(federation, request.Nonce, ct);
            if (expires is null) throw Refuse(401, "Unknown nonce", "The nonce was never issued for this federation or was already used; ask for a new challenge.");
            if (expires < time.GetUtcNow()) throw Refuse(401, "Expired nonce", "The nonce has expired; ask for a new challenge.");

            X509Certificate2 certificate;
            try
            {
                certificate = X509Certificate2.CreateFromPem(request.CertificatePem ?? "");
            }
            catch (CryptographicException e)
            {
                throw Refuse(400, "Invalid certificate", $"certificatePem is not a PEM certificate: {e.Message}");
            }
            using (certificate)
            {
                if (!Trust().IsTrusted(certificate, DevCertificateAuthority.ClientAuthOid, out var reason))
                    throw Refuse(401, "Untrusted certificate", $"The certificate is not a client certificate of the federation's CA: {reason}");
                var cn = certificate.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
                if (cn != request.ClientId)
                    throw Refuse(401, "Certificate mismatch", $"The certificate is issued to '{cn}', not to '{request.ClientId}'.");
                using var key = certificate.GetECDsaPublicKey() ?? throw Refuse(400, "Unsupported key", "The certificate's key is not ECDSA.");
                if (!EnrollmentProof.Verify(key, federation, request.ClientId, request.Nonce, request.Signature))
                    throw Refuse(401, "Bad signature", "The signature over the challenge does not verify with the certificate's key.");
                if (state.Config.AllowedClients is { Length: > 0 } allowed)
                {
                    if (!allowed.Contains(request.ClientId, StringComparer.Ordinal))
                        throw Refuse(403, "Not on the roster", $"Client '{request.ClientId}' is not in federation '{federation}''s allowedClients.");
                }
                else if (!state.Config.OpenEnrollment)
                {
                    throw Refuse(403, "Empty roster", $"Federation '{federation}' has no allowedClients and is not open for enrollment (set openEnrollment to admit any certificate of the CA).");
                }

                var thumbprint = ClientCertificateRegistry.Thumbprint(certificate);
                // The certificate is kept: its key is the client's long-term identity that signs its secure-aggregation messages,
                // and peers check it against their own trust anchor (the server only relays it).
                var pem = certificate.ExportCertificatePem();
                EnrolledClient? enrolled = null;
                var updated = await store.UpdateAsync(federation, s =>
                {
                    if (s.Removed.Any(c => c.CertificateThumbprint == thumbprint))
                        throw Refuse(403, "Certificate revoked", $"The certificate was revoked for federation '{federation}' when its client was removed; enroll with a new certificate.");
                    var existing = s.Clients.FirstOrDefault(c => c.ClientId == request.ClientId);
                    if (existing is not null)
                    {
                        if (existing.CertificateThumbprint != thumbprint)
                            throw Refuse(409, "Bound to another certificate", $"Client '{request.ClientId}' is enrolled with another certificate ({existing.CertificateThumbprint[..16]}...).");
                        enrolled = existing;
                        if (existing.CertificatePem is not null) return s;
                        enrolled = existing with { CertificatePem = pem };   // enrolled before certificates were kept
                        return s with { Clients = s.Clients.Select(c => c.ClientId == request.ClientId ? enrolled : c).ToArray() };
                    }
                    // Removed clients keep their ids: a SecAgg id (a Shamir x-coordinate) is never handed out twice.
                    var used = s.Clients.Concat(s.Removed).Select(c => c.SecAggId).DefaultIfEmpty(0).Max();
                    enrolled = new EnrolledClient(request.ClientId, used + 1, thumbprint, time.GetUtcNow(), pem);
                    return s with { Clients = [.. s.Clients, enrolled] };
                }, ct) ?? throw Refuse(404, "Not found", $"Federation '{federation}' does not exist.");
                // Bound to this federation and this certificate: ClientTokenBinding refuses it anywhere else, or once the client is removed.
                var token = await tokens.IssueAsync(new TokenRequest(request.ClientId, [ClientRole], request.ClientId, options.ClientTokenLifetime,
                    new Dictionary<string, string> { [SecurityClaims.Federation] = federation, [SecurityClaims.CertificateThumbprint] = thumbprint }), ct);
                await audit.AppendAsync(new AuditEvent(request.ClientId, "federation.enroll", $"federation/{federation}", AuditOutcome.Success, requestId,
                    $"secAggId={enrolled!.SecAggId} thumbprint={thumbprint}"), ct);
                return new EnrollmentResponse(request.ClientId, enrolled.SecAggId, token, time.GetUtcNow() + options.ClientTokenLifetime, thumbprint);
            }
        }
        catch (EnrollmentRefusedException e)
        {
            await audit.AppendAsync(new AuditEvent(request.ClientId ?? "?", "federation.enroll", $"federation/{federation}",
                e.Status == 403 ? AuditOutcome.Denied : AuditOutcome.Failure, requestId, e.Message), ct);
            throw;
        }
    }

    /// <summary>
    /// Removes an enrolled client: it leaves the roster (its tokens stop working at once, see
    /// <see cref="ClientTokenBinding"/>), its certificate is revoked for this federation, and its SecAgg id
    /// is retired. Returns false when no such client is enrolled.
    /// </summary>
    public async Task<bool> RemoveAsync(string federation, string clientId, string actor, string? reason, string? requestId, CancellationToken ct)
    {
        EnrolledClient? removed = null;
        var updated = await store.UpdateAsync(federation, s =>
        {
            removed = s.Clients.FirstOrDefault(c => c.ClientId == clientId);
            return removed is null ? s : s with { Clients = s.Clients.Where(c => c.ClientId != clientId).ToArray(), Removed = [.. s.Removed, removed] };
        }, ct);
        if (updated is null || removed is null) return false;
        await audit.AppendAsync(new AuditEvent(actor, "federation.client.remove", $"federation/{federation}/client/{clientId}", AuditOutcome.Success, requestId,
            $"secAggId={removed.SecAggId} certificate {removed.CertificateThumbprint} revoked" + (string.IsNullOrWhiteSpace(reason) ? "" : "; " + reason)), ct);
        return true;
    }

    private static EnrollmentRefusedException Refuse(int status, string title, string message) => new(status, title, message);

    private CertificateTrust Trust() => ca.TryGetTrust() ?? throw Refuse(503, "No certificate authority", ca.MissingReason);

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
