using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Serverless.Functions.Inference;

namespace Serverless.Functions.Tests.Inference;

/// <summary>App settings <c>Inference__*</c> are validated at start: a bad value is refused naming the setting, never its value.</summary>
public sealed class InferenceOptionsTests
{
    [Theory]
    [InlineData("MaxBatchBytes", "10", "Inference__MaxBatchBytes must be between 1024 and 2147483647")]
    [InlineData("MaxModelBytes", "0", "Inference__MaxModelBytes must be between 1024 and 1073741824")]
    [InlineData("MaxKeyBundleBytes", "4294967296", "Inference__MaxKeyBundleBytes must be between 1024 and 2147483647")]
    [InlineData("MaxRecordsPerPartnerPerDay", "0", "Inference__MaxRecordsPerPartnerPerDay must be at least 1")]
    public void Bad_values_are_refused_with_the_setting_named(string key, string value, string expected)
    {
        using var services = Build(new() { ["Inference:" + key] = value });
        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<InferenceOptions>>().Value);
        Assert.Contains(expected, error.Message);
        Assert.DoesNotContain("=" + value, error.Message);
    }

    [Fact]
    public void Settings_bind_and_defaults_hold_a_ten_thousand_record_batch_at_production_parameters()
    {
        using (var services = Build(new() { ["Inference:MaxBatchBytes"] = "4096" }))
            Assert.Equal(4096, services.GetRequiredService<IOptions<InferenceOptions>>().Value.MaxBatchBytes);
        var options = new InferenceOptions();
        Assert.True(options.MaxBatchBytes >= 168_000_000); // the full run's batch: 10,000 records, N = 16384
        Assert.False(options.AllowInsecureParametersForTests);
        Assert.Empty(options.Problems());
    }

    private static ServiceProvider Build(Dictionary<string, string?> values)
    {
        var settings = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        return new ServiceCollection().AddInference(settings).BuildServiceProvider();
    }
}
