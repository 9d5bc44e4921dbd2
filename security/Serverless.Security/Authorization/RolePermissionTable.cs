using System.Collections.Frozen;

namespace Serverless.Security.Authorization;

/// <summary>
/// A role: a set of permissions, and whether it is bound to its holder's tenant (a hospital's
/// federation client, a partner, a clinician) or global (operator, auditor, ...).
/// </summary>
public sealed record RoleDefinition(string Name, bool TenantScoped, FrozenSet<string> Permissions);

/// <summary>
/// The role-to-permission relation PA ⊆ R × P as data (Authorization/roles.json, embedded): the
/// permission catalogue P, the roles R and the pairs. A permission not in the catalogue, or a role
/// not in R, grants nothing.
/// </summary>
public sealed class RolePermissionTable
{
    private static readonly Lazy<RolePermissionTable> DefaultTable = new(() =>
    {
        using var stream = typeof(RolePermissionTable).Assembly.GetManifestResourceStream("Serverless.Security.roles.json")
            ?? throw new InvalidOperationException("The embedded roles.json is missing.");
        return Parse(stream);
    });

    private RolePermissionTable(FrozenDictionary<string, string> permissions, FrozenDictionary<string, RoleDefinition> roles)
    {
        Permissions = permissions;
        Roles = roles;
    }

    /// <summary>The shipped table.</summary>
    public static RolePermissionTable Default => DefaultTable.Value;

    /// <summary>The permission catalogue: name -> description.</summary>
    public FrozenDictionary<string, string> Permissions { get; }

    public FrozenDictionary<string, RoleDefinition> Roles { get; }

    public bool IsKnownRole(string role) => Roles.ContainsKey(role);
    public bool IsKnownPermission(string permission) => Permissions.ContainsKey(permission);

    /// <summary>(role, permission) ∈ PA.</summary>
    public bool Grants(string role, string permission) =>
        Roles.TryGetValue(role, out var definition) && definition.Permissions.Contains(permission);

    /// <summary>Reads a table in the roles.json shape; every role's permission must be in the catalogue.</summary>
    /// <exception cref="FormatException">Malformed JSON, an empty catalogue, or a role granting an unknown permission.</exception>
    public static RolePermissionTable Parse(Stream json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e) { throw new FormatException($"Role table is not JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("permissions", out var permissionsElement) || permissionsElement.ValueKind != JsonValueKind.Object)
                throw new FormatException("Role table has no 'permissions' object.");
            if (!root.TryGetProperty("roles", out var rolesElement) || rolesElement.ValueKind != JsonValueKind.Object)
                throw new FormatException("Role table has no 'roles' object.");
            var permissions = permissionsElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "", StringComparer.Ordinal);
            if (permissions.Count == 0) throw new FormatException("Role table has an empty permission catalogue.");
            var roles = new Dictionary<string, RoleDefinition>(StringComparer.Ordinal);
            foreach (var role in rolesElement.EnumerateObject())
            {
                var scoped = role.Value.TryGetProperty("scoped", out var s) && s.GetBoolean();
                var granted = role.Value.GetProperty("permissions").EnumerateArray().Select(p => p.GetString() ?? "").ToList();
                foreach (var permission in granted)
                    if (!permissions.ContainsKey(permission))
                        throw new FormatException($"Role '{role.Name}' grants unknown permission '{permission}'.");
                roles[role.Name] = new RoleDefinition(role.Name, scoped, granted.ToFrozenSet(StringComparer.Ordinal));
            }
            return new RolePermissionTable(permissions.ToFrozenDictionary(StringComparer.Ordinal), roles.ToFrozenDictionary(StringComparer.Ordinal));
        }
    }
}

/// <summary>Permission names as constants, so function attributes are checked by the compiler.</summary>
public static class Permissions
{
    public const string FederationCreate = "federation.create";
    public const string FederationManage = "federation.manage";
    public const string FederationRead = "federation.read";
    public const string RoundStart = "round.start";
    public const string RoundRead = "round.read";
    public const string RoundParticipate = "round.participate";
    public const string ModelPromote = "model.promote";
    public const string ModelRead = "model.read";
    public const string ModelExport = "model.export";
    public const string MetricsRead = "metrics.read";
    public const string InferenceSubmit = "inference.submit";
    public const string InferenceRead = "inference.read";
    public const string RiskScore = "risk.score";
    public const string RiskExplain = "risk.explain";
    public const string FraudSubmit = "fraud.submit";
    public const string FraudAlerts = "fraud.alerts";
    public const string AuditRead = "audit.read";
    public const string AuditVerify = "audit.verify";
    public const string ComplianceRead = "compliance.read";
    public const string OrchestrationRead = "orchestration.read";
    public const string OrchestrationManage = "orchestration.manage";
    public const string KeysManage = "keys.manage";
    public const string RolesManage = "roles.manage";
    public const string DataExport = "data.export";
}

/// <summary>Role names as constants.</summary>
public static class Roles
{
    public const string Operator = "operator";
    public const string FederationClient = "federation-client";
    public const string Partner = "partner";
    public const string Bank = "bank";
    public const string Clinician = "clinician";
    public const string DataScientist = "data-scientist";
    public const string Auditor = "auditor";
    public const string Admin = "admin";
}
