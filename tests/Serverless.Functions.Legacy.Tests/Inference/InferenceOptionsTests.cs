using Microsoft.Extensions.DependencyInjection;
using Serverless.Functions.Inference;
using Serverless.Runtime.Hosting;
using Serverless.Runtime.Hosting.HostJson;

namespace Serverless.Functions.Tests.Inference;

/// <summary>host.json <c>extensions.inference</c> is validated like every other section: a bad value stops the host naming the key.</summary>
public sealed class InferenceOptionsTests
{
    [Theory]
    [InlineData("\"maxBatchBytes\": 10", "host.json: extensions.inference.maxBatchBytes: must be between 1024 and 2147483647")]
    [InlineData("\"maxModelBytes\": 0", "host.json: extensions.inference.maxModelBytes: must be between 1024 and 1073741824")]
    [InlineData("\"maxBatchByte\": 2048", "maxBatchByte")]
    public void Bad_values_stop_the_host_with_the_key_named(string setting, string expected)
    {
        var dir = Path.Combine(Path.GetTempPath(), "inference-options-" + Guid.NewGuid().ToString("N"));
        try
        {
            var builder = FunctionsApplication.CreateBuilder(new FunctionsApplicationOptions
            {
                HostJson = $$"""{ "version": "2.0", "extensions": { "inference": { {{setting}} } } }""",
                DataDirectory = dir,
                HostJsonOverrides = new Dictionary<string, string>(),
            });
            builder.Services.AddInference();
            var error = Assert.Throws<HostJsonException>(() => builder.Build());
            Assert.Contains(expected, error.Message);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public void Defaults_hold_a_ten_thousand_record_batch_at_production_parameters()
    {
        var options = new InferenceOptions();
        Assert.True(options.MaxBatchBytes >= 168_000_000); // the full run's batch: 10,000 records, N = 16384
        Assert.False(options.AllowInsecureParametersForTests);
    }
}
