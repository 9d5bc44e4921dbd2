using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Serverless.Functions.Inference;

namespace Serverless.Functions.Tests.Inference;

/// <summary>
/// The function app's compiled code never names the secret-key API: no type reference to the secret
/// key, the key generator, the decryptor or the partner-side key and score types, and no call to the
/// secret-key loader. Together with the run-time counter in the end-to-end test, this keeps "no secret
/// key server-side" from regressing by a new call site.
/// </summary>
public sealed class NoSecretKeyAssemblyTests
{
    private static readonly string[] ForbiddenTypes = ["SecretKey", "KeyGenerator", "Decryptor", "PartnerKeys", "ScoreDecryptor"];

    [Fact]
    public void The_functions_assembly_references_no_secret_key_type_or_loader()
    {
        var path = typeof(PartnerBatchFunctions).Assembly.Location;
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var reader = pe.GetMetadataReader();

        var typeNames = reader.TypeReferences.Select(h => reader.GetTypeReference(h))
            .Select(t => reader.GetString(t.Namespace) + "." + reader.GetString(t.Name)).ToList();
        Assert.Contains("Serverless.Inference.EncryptedEvaluator", typeNames); // the check sees the inference references at all
        foreach (var forbidden in ForbiddenTypes)
            Assert.DoesNotContain(typeNames, n => n.EndsWith("." + forbidden, StringComparison.Ordinal));

        var members = reader.MemberReferences.Select(h => reader.GetString(reader.GetMemberReference(h).Name)).ToList();
        Assert.Contains("EvaluateGroup", members);
        Assert.DoesNotContain("LoadSecretKey", members);
        Assert.DoesNotContain(members, m => m.Contains("SecretKey", StringComparison.Ordinal));

        // Nor does it reference the client (partner) assembly.
        var assemblies = reader.AssemblyReferences.Select(h => reader.GetString(reader.GetAssemblyReference(h).Name)).ToList();
        Assert.DoesNotContain("serverless-client", assemblies);
    }
}
