namespace Serverless.Security.Audit;

/// <summary>
/// An <see cref="IKeyVault"/> that writes one audit entry per key use (wrap, unwrap, sign) and per
/// key management action (create, rotate, disable), successful or not. Reads of metadata and public
/// keys, and verification, are not audited. The audit log itself must be given the undecorated
/// vault (its checkpoint signatures would otherwise audit themselves).
/// </summary>
public sealed class AuditedKeyVault(IKeyVault inner, IAuditLog audit, Func<string>? actor = null) : IKeyVault
{
    private readonly IKeyVault _inner = inner ?? throw new ArgumentNullException(nameof(inner));
    private readonly IAuditLog _audit = audit ?? throw new ArgumentNullException(nameof(audit));
    private readonly Func<string> _actor = actor ?? (() => "platform");

    public Task<KeyVersionInfo> CreateKeyAsync(string name, KeyKind kind, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyCreate, $"key/{name}", kind.ToString(), () => _inner.CreateKeyAsync(name, kind, cancellationToken), r => r.Id.Version, cancellationToken);

    public Task<KeyVersionInfo> RotateKeyAsync(string name, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyRotate, $"key/{name}", "rotate", () => _inner.RotateKeyAsync(name, cancellationToken), r => r.Id.Version, cancellationToken);

    public Task<IReadOnlyList<KeyVersionInfo>> ListVersionsAsync(string name, CancellationToken cancellationToken = default) => _inner.ListVersionsAsync(name, cancellationToken);

    public Task<KeyVersionInfo?> GetCurrentVersionAsync(string name, CancellationToken cancellationToken = default) => _inner.GetCurrentVersionAsync(name, cancellationToken);

    public Task DisableVersionAsync(KeyId id, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyDisable, $"key/{id}", "disable", async () => { await _inner.DisableVersionAsync(id, cancellationToken); return true; }, _ => "", cancellationToken);

    public Task<WrappedKey> WrapKeyAsync(string name, ReadOnlyMemory<byte> dataKey, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyUse, $"key/{name}", "wrap", () => _inner.WrapKeyAsync(name, dataKey, cancellationToken), r => r.KeyId.Version, cancellationToken);

    public Task<byte[]> UnwrapKeyAsync(WrappedKey wrapped, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyUse, $"key/{wrapped.KeyId}", "unwrap", () => _inner.UnwrapKeyAsync(wrapped, cancellationToken), _ => "", cancellationToken);

    public Task<KeySignature> SignAsync(string name, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default) =>
        AuditedAsync(AuditActions.KeyUse, $"key/{name}", "sign", () => _inner.SignAsync(name, sha256Digest, cancellationToken), r => r.KeyId.Version, cancellationToken);

    public Task<bool> VerifyAsync(KeySignature signature, ReadOnlyMemory<byte> sha256Digest, CancellationToken cancellationToken = default) =>
        _inner.VerifyAsync(signature, sha256Digest, cancellationToken);

    public Task<byte[]> GetPublicKeyAsync(KeyId id, CancellationToken cancellationToken = default) => _inner.GetPublicKeyAsync(id, cancellationToken);

    private async Task<T> AuditedAsync<T>(string action, string resource, string operation, Func<Task<T>> call, Func<T, string> version, CancellationToken cancellationToken)
    {
        T result;
        try
        {
            result = await call();
        }
        catch (Exception e)
        {
            await _audit.AppendAsync(new AuditEvent(_actor(), action, resource, AuditOutcome.Failure, Detail: $"{operation}: {e.GetType().Name}"), CancellationToken.None);
            throw;
        }
        var v = version(result);
        await _audit.AppendAsync(new AuditEvent(_actor(), action, resource, AuditOutcome.Success, Detail: v.Length > 0 ? $"{operation} (version {v})" : operation), cancellationToken);
        return result;
    }
}
