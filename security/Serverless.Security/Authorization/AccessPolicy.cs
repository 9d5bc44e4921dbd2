using System.Collections.Concurrent;
using System.Security.Claims;
using Serverless.Security.Identity;

namespace Serverless.Security.Authorization;

/// <summary>A resource an action is about: a federation, a partner's batch, a tenant's data.</summary>
public readonly record struct ResourceRef(string Kind, string Id)
{
    public const string Federation = "federation";
    public const string Batch = "batch";

    /// <summary>The tenant itself (a hospital's patients, a bank's accounts): accessible to that tenant only.</summary>
    public const string Tenant = "tenant";

    public override string ToString() => $"{Kind}/{Id}";
}

/// <summary>Which tenants may reach which resources (a federation's roster, the partner that owns a batch).</summary>
public interface IResourceOwnership
{
    ValueTask<bool> IsAccessibleAsync(ResourceRef resource, string tenant, CancellationToken cancellationToken = default);
}

/// <summary>
/// In-memory ownership: federations record their roster here, inference records the partner that
/// posted each batch. Resources of kind <see cref="ResourceRef.Tenant"/> need no entry.
/// </summary>
public sealed class InMemoryResourceOwnership : IResourceOwnership
{
    private readonly ConcurrentDictionary<ResourceRef, ConcurrentDictionary<string, byte>> _grants = new();

    public void Grant(ResourceRef resource, string tenant) =>
        _grants.GetOrAdd(resource, _ => new(StringComparer.Ordinal))[tenant] = 0;

    public void Revoke(ResourceRef resource, string tenant)
    {
        if (_grants.TryGetValue(resource, out var tenants)) tenants.TryRemove(tenant, out _);
    }

    public ValueTask<bool> IsAccessibleAsync(ResourceRef resource, string tenant, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(resource.Kind == ResourceRef.Tenant
            ? string.Equals(resource.Id, tenant, StringComparison.Ordinal)
            : _grants.TryGetValue(resource, out var tenants) && tenants.ContainsKey(tenant));
}

/// <summary>The outcome of an access check; <see cref="StatusCode"/> is 401 (who are you?) or 403 (not allowed).</summary>
public sealed record AccessDecision(bool Allowed, int StatusCode, string Reason, string? GrantedBy = null)
{
    public static AccessDecision Allow(string role) => new(true, 200, $"granted by role '{role}'", role);
    public static AccessDecision Unauthenticated() => new(false, 401, "authentication required");
    public static AccessDecision Forbidden(string reason) => new(false, 403, reason);
}

/// <summary>
/// Deny-by-default role-based access control with tenant scoping:
/// <list type="number">
/// <item>an unauthenticated caller, a caller with no role, or any role not in the table is refused;</item>
/// <item>an undeclared (unknown) permission is refused;</item>
/// <item>some role of the caller must hold the permission (PA);</item>
/// <item>if only tenant-scoped roles hold it and a resource is named, the caller's tenant must reach that resource.</item>
/// </list>
/// </summary>
public sealed class AccessPolicy(RolePermissionTable table, IResourceOwnership ownership)
{
    public RolePermissionTable Table { get; } = table ?? throw new ArgumentNullException(nameof(table));

    public async ValueTask<AccessDecision> DecideAsync(ClaimsPrincipal principal, string permission, ResourceRef? resource = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(principal);
        if (principal.Identity?.IsAuthenticated != true) return AccessDecision.Unauthenticated();
        if (!Table.IsKnownPermission(permission)) return AccessDecision.Forbidden($"permission '{permission}' is not declared in the role table");

        var roles = principal.FindAll(SecurityClaims.Role).Select(c => c.Value).Distinct(StringComparer.Ordinal).ToList();
        if (roles.Count == 0) return AccessDecision.Forbidden("the caller has no role");
        foreach (var role in roles)
            if (!Table.IsKnownRole(role)) return AccessDecision.Forbidden($"unknown role '{role}'");

        string? scopedGrant = null;
        foreach (var role in roles)
        {
            if (!Table.Grants(role, permission)) continue;
            if (!Table.Roles[role].TenantScoped) return AccessDecision.Allow(role);
            scopedGrant ??= role;
        }
        if (scopedGrant is null) return AccessDecision.Forbidden($"no role of the caller ({string.Join(", ", roles)}) holds '{permission}'");
        if (resource is not { } target) return AccessDecision.Allow(scopedGrant);

        var tenant = principal.FindFirst(SecurityClaims.Tenant)?.Value;
        if (string.IsNullOrEmpty(tenant)) return AccessDecision.Forbidden($"role '{scopedGrant}' is tenant-scoped but the caller has no tenant claim");
        return await ownership.IsAccessibleAsync(target, tenant, cancellationToken)
            ? AccessDecision.Allow(scopedGrant)
            : AccessDecision.Forbidden($"tenant '{tenant}' has no access to {target}");
    }
}
