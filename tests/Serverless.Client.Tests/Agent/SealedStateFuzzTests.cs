using System.Security.Cryptography;
using Serverless.Client.Agent;
using Xunit.Abstractions;

namespace Serverless.Client.Tests.Agent;

/// <summary>
/// The agent's sealed state (<see cref="CryptographicException"/>, <see cref="InvalidDataException"/>). Its reads are
/// async, so its allocations are measured process-wide; it runs alone, after the parallel test classes, or their
/// allocations would be counted as its own.
/// </summary>
[Collection(ProcessWideAllocationCollection.Name)]
public sealed class SealedStateFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Sealed_agent_state()
    {
        var directory = Directory.CreateTempSubdirectory("fuzz-agent-").FullName;
        try
        {
            using var keys = await AgentKeys.OpenAsync(directory, masterKeyVariable: "SERVERLESS_FUZZ_UNSET_MASTER_KEY");
            var file = new SealedStateFile<AgentRoundState>(Path.Combine(directory, "progress-fed.json"), keys.Encryptor);
            var state = new AgentRoundState { Federation = "fed", Round = 3, Outcome = "committed", Restarts = 1 };
            state.Stage("training");
            await file.SaveAsync(state);
            var sample = await File.ReadAllBytesAsync(file.Path);
            // 32 × input + 1 MiB, measured process-wide (the file and envelope reads are async): the
            // file is read into a buffer and the plaintext into a MemoryStream (2 ×, doubling growth 2 ×),
            // then the JSON document (UTF-16 and objects, a few ×). The intercept is the keyring's unwrap
            // of the data key, AES-GCM state, FileStream buffers and the serializer's metadata.
            var spec = new LoaderSpec("sealed agent state", [typeof(CryptographicException), typeof(InvalidDataException)], 32, 1 << 20, MeasureAllThreads: true);
            Fuzzer.Run(spec, [sample], b =>
            {
                File.WriteAllBytes(file.Path, b);
                file.LoadAsync().GetAwaiter().GetResult();
            }, output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideAllocationCollection
{
    public const string Name = "process-wide allocation";
}
