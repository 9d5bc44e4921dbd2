namespace Serverless.Functions.Federations.Services;

/// <summary>
/// Tenant reach for federations read from the persisted roster (an enrolled client's tenant is its
/// client id), so it holds across restarts and on every host that shares the store; every other
/// resource kind is answered by the security layer's in-memory grants, as before.
/// </summary>
internal sealed class FederationOwnership(FederationStore store, InMemoryResourceOwnership inner) : IResourceOwnership
{
    public async ValueTask<bool> IsAccessibleAsync(ResourceRef resource, string tenant, CancellationToken cancellationToken = default)
    {
        if (resource.Kind != ResourceRef.Federation) return await inner.IsAccessibleAsync(resource, tenant, cancellationToken);
        if (await inner.IsAccessibleAsync(resource, tenant, cancellationToken)) return true;
        var state = await store.TryGetStateAsync(resource.Id, cancellationToken);
        return state is not null && state.Clients.Any(c => c.ClientId == tenant);
    }
}
