using Azure.Identity;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Serverless.Functions.Hosting;

/// <summary>Which stores the app settled on, for the health report (never a connection string).</summary>
public sealed record AppStorageBackends(string Blob, string Queue);

/// <summary>
/// The app's blob containers and queues, from app settings. <c>SERVERLESS_STORAGE</c> is <c>embedded</c>
/// (files and SQLite under <c>SERVERLESS_DATA_DIR</c>, default ./.serverless-data; the local host's queue
/// triggers read the same <c>queues.db</c>) or <c>azure</c> (Azure Storage through <c>AzureWebJobsStorage</c>:
/// a connection string, or <c>AzureWebJobsStorage__accountName</c> with a managed identity, as on Flex
/// Consumption). Unset, it is azure when AzureWebJobsStorage is set, else embedded.
/// </summary>
internal static class AppStorage
{
    public const string DataDirectorySetting = "SERVERLESS_DATA_DIR";
    public const string BackendSetting = "SERVERLESS_STORAGE";
    public const string ConnectionSetting = "AzureWebJobsStorage";

    public static IServiceCollection AddAppStorage(this IServiceCollection services, IConfiguration settings)
    {
        var dataDirectory = Path.GetFullPath(settings[DataDirectorySetting] is { Length: > 0 } configured ? configured : ".serverless-data");
        Directory.CreateDirectory(dataDirectory);
        services.AddSingleton(new DataDirectory(dataDirectory));

        var connection = settings[ConnectionSetting];
        var account = settings[ConnectionSetting + ":accountName"];
        var backend = settings[BackendSetting]?.ToLowerInvariant() ?? (connection is { Length: > 0 } || account is { Length: > 0 } ? "azure" : "embedded");
        switch (backend)
        {
            case "embedded":
                services.AddSingleton(sp => Stores.OpenEmbeddedBlobs(Path.Combine(dataDirectory, "blobs"), sp.GetService<TimeProvider>()));
                services.AddSingleton(sp => Stores.OpenEmbeddedQueues(Path.Combine(dataDirectory, "queues.db"), sp.GetService<TimeProvider>()));
                break;
            case "azure" when connection is { Length: > 0 }:
                services.AddSingleton(_ => Stores.OpenAzureBlobs(connection));
                services.AddSingleton(_ => Stores.OpenAzureQueues(connection));
                break;
            case "azure" when account is { Length: > 0 }:
                // Identity-based connection (https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
                var credential = new DefaultAzureCredential();
                services.AddSingleton(_ => Stores.OpenAzureBlobs(new Uri($"https://{account}.blob.core.windows.net"), credential));
                services.AddSingleton(_ => Stores.OpenAzureQueues(new Uri($"https://{account}.queue.core.windows.net"), credential));
                break;
            default:
                throw new InvalidOperationException(
                    $"app setting {BackendSetting} is '{backend}': it must be 'embedded' or 'azure', and azure needs {ConnectionSetting} or {ConnectionSetting}__accountName");
        }
        services.AddSingleton(new AppStorageBackends(backend, backend));
        return services;
    }
}
