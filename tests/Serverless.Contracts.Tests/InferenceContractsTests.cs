using System.Text.Json;
using Serverless.Contracts.Governance;
using Serverless.Contracts.Inference;

namespace Serverless.Contracts.Tests;

/// <summary>The wire the app and its clients share: routes the triggers declare and clients build alike, and the JSON names.</summary>
public sealed class InferenceContractsTests
{
    [Fact]
    public void Client_paths_are_the_trigger_templates_filled_in_with_escaped_values()
    {
        Assert.Equal("api/" + InferenceRoutes.Templates.Model.Replace("{version}", "he-v1"), InferenceRoutes.Model("he-v1"));
        Assert.Equal("api/" + InferenceRoutes.Templates.PartnerKeys.Replace("{tenant}", "insurer-a").Replace("{version}", "he-v1"),
            InferenceRoutes.PartnerKeys("insurer-a", "he-v1"));
        Assert.Equal("api/" + InferenceRoutes.Templates.PartnerBatch.Replace("{tenant}", "insurer-a").Replace("{batchId}", "b.1"),
            InferenceRoutes.PartnerBatch("insurer-a", "b.1"));
        Assert.Equal("api/partners/insurer-a/batches/b.1?modelVersion=he-v1", InferenceRoutes.PartnerBatchSubmission("insurer-a", "b.1", "he-v1"));
        // A value that is not a valid id cannot reach another route: it is escaped, and the app refuses it by InferenceNames.
        Assert.Equal("api/partners/a%2F..%2Fb/batches/x%3Fy", InferenceRoutes.PartnerBatch("a/../b", "x?y"));
        Assert.Equal("api/audit/verify", GovernanceRoutes.Path(GovernanceRoutes.AuditVerify));
    }

    [Fact]
    public void The_queue_message_carries_the_documented_camel_case_names_and_reads_back()
    {
        var message = new PartnerBatchMessage("b1", "insurer-a", "he-v1", "insurer-a/b1", new string('a', 64), "token", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01");
        var json = JsonSerializer.Serialize(message, JsonSerializerOptions.Web);
        using var document = JsonDocument.Parse(json);
        Assert.Equal(["batchId", "tenant", "modelVersion", "blob", "sha256", "token", "traceParent"],
            document.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(message, JsonSerializer.Deserialize<PartnerBatchMessage>(json, JsonSerializerOptions.Web));
    }

    [Theory]
    [InlineData("insurer-a", true)]
    [InlineData("a", true)]
    [InlineData("He.v1_2", true)]
    [InlineData("", false)]
    [InlineData("-leading", false)]
    [InlineData("has space", false)]
    [InlineData("a/b", false)]
    [InlineData("ü", false)]
    public void Ids_are_1_to_64_safe_characters_starting_with_a_letter_or_digit(string id, bool valid)
    {
        Assert.Equal(valid, InferenceNames.IsValidId(id));
        Assert.True(InferenceNames.IsValidId(new string('x', 64)));
        Assert.False(InferenceNames.IsValidId(new string('x', 65)));
        Assert.False(InferenceNames.IsValidId(null));
    }

    [Fact]
    public void A_SHA_256_is_64_lower_case_hex_digits()
    {
        Assert.True(InferenceNames.IsSha256Hex(new string('0', 64)));
        Assert.False(InferenceNames.IsSha256Hex(new string('A', 64)));
        Assert.False(InferenceNames.IsSha256Hex(new string('0', 63)));
        Assert.Equal("partner-batch:insurer-a:b1", InferenceNames.InstanceId("insurer-a", "b1"));
    }

    [Fact]
    public void The_audit_answers_round_trip_through_the_web_defaults()
    {
        var verification = new AuditVerification(false, 7, 2, 7, new AuditBreakInfo("EntryModified", 5, "hash mismatch"), "audit chain BROKEN");
        var json = JsonSerializer.Serialize(verification, JsonSerializerOptions.Web);
        Assert.Contains("\"firstBreak\":{\"kind\":\"EntryModified\",\"sequence\":5", json);
        Assert.Equal(verification, JsonSerializer.Deserialize<AuditVerification>(json, JsonSerializerOptions.Web));
    }
}
