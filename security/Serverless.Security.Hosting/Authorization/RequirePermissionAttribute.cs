namespace Serverless.Security.Authorization;

/// <summary>
/// Declares the permission a function (or endpoint) needs. Optionally names the route parameter that
/// identifies the resource, for tenant scoping. Also an ASP.NET Core authorization marker
/// (policy "permission:&lt;name&gt;"), so minimal APIs and controllers honour it as they are.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Class, AllowMultiple = false, Inherited = true)]
public sealed class RequirePermissionAttribute(string permission) : Attribute, Microsoft.AspNetCore.Authorization.IAuthorizeData
{
    public const string PolicyPrefix = "permission:";

    public string Permission { get; } = permission;

    /// <summary>The kind of resource the route parameter names (<see cref="ResourceRef.Federation"/>, <see cref="ResourceRef.Batch"/>, ...).</summary>
    public string? ResourceKind { get; init; }

    /// <summary>The route parameter (or query parameter) whose value is the resource id, e.g. "federationId".</summary>
    public string? ResourceParameter { get; init; }

    string? Microsoft.AspNetCore.Authorization.IAuthorizeData.Policy { get => PolicyPrefix + Permission; set => throw new NotSupportedException(); }
    string? Microsoft.AspNetCore.Authorization.IAuthorizeData.Roles { get => null; set => throw new NotSupportedException(); }
    string? Microsoft.AspNetCore.Authorization.IAuthorizeData.AuthenticationSchemes { get; set; }

    /// <summary>The resource this request is about, from route values (then the query string); null when the attribute names none.</summary>
    public ResourceRef? ResolveResource(Func<string, string?> lookup)
    {
        if (ResourceKind is null || ResourceParameter is null) return null;
        var id = lookup(ResourceParameter);
        // A declared but missing resource id scopes to an empty id, which no tenant owns.
        return new ResourceRef(ResourceKind, id ?? "");
    }
}
