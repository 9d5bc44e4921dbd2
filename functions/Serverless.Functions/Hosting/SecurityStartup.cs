using System.Reflection;
using Microsoft.AspNetCore.Authorization;
using Microsoft.Extensions.Hosting;
using Serverless.Security.Hosting;

namespace Serverless.Functions.Hosting;

/// <summary>
/// Before the worker takes invocations: refuses to start when an HTTP function declares no permission
/// (nor [AllowAnonymous]) or an unknown one, then creates the missing keys and loads the token keys.
/// </summary>
internal sealed class SecurityStartup(IServiceProvider services, RolePermissionTable roles) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var problems = DeclarationProblems(roles);
        if (problems.Count > 0) throw new InvalidOperationException("security: " + string.Join(Environment.NewLine + "security: ", problems));
        await SecurityHosting.EnsureKeysAsync(services, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Unknown permissions, and HTTP functions that declare none and are not [AllowAnonymous].</summary>
    public static IReadOnlyList<string> DeclarationProblems(RolePermissionTable roles)
    {
        var problems = new List<string>();
        foreach (var (name, method) in FunctionMethods.All())
        {
            var declared = method.GetCustomAttribute<RequirePermissionAttribute>();
            if (declared is not null && !roles.IsKnownPermission(declared.Permission))
                problems.Add($"function '{name}' requires unknown permission '{declared.Permission}'");
            if (FunctionMethods.IsHttp(method) && declared is null && !method.IsDefined(typeof(AllowAnonymousAttribute), inherit: true))
                problems.Add($"HTTP function '{name}' declares no permission: add [RequirePermission(Permissions.X)] or [AllowAnonymous]");
        }
        return problems;
    }
}
