using System.Security.Cryptography;
using Serverless.Security.Envelope;
using Xunit.Abstractions;

namespace Serverless.Security.Tests.Envelope;

/// <summary>Envelope headers (<see cref="CryptographicException"/>), the first thing read from every sealed blob.</summary>
public sealed class EnvelopeHeaderFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Envelope_header()
    {
        var header = new EnvelopeHeader(64 * 1024, Enumerable.Range(0, 8).Select(i => (byte)i).ToArray(),
            new Serverless.Security.Keys.WrappedKey(new Serverless.Security.Keys.KeyId("data-kek", "v1"), "A256GCMKW", new byte[40]), new byte[32]);
        var sample = header.ToBytes();
        // 8 × input + 64 KiB: the fixed part and the key part are read into arrays of their declared
        // sizes, bounded by the format (key part ≤ MaxKeyPartLength) and only read after it; names are
        // decoded once (UTF-16, 2 ×). The intercept is the largest key part the format allows plus the
        // async state machine.
        var spec = new LoaderSpec("envelope header", [typeof(CryptographicException)], 8, 64 << 10);
        Fuzzer.Run(spec, [sample], b => EnvelopeHeader.ReadAsync(new MemoryStream(b), CancellationToken.None).GetAwaiter().GetResult(), output);
    }
}
