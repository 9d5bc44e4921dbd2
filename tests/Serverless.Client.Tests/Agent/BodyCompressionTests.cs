using System.IO.Compression;
using System.Text;
using Serverless.Client.Agent;

namespace Serverless.Client.Tests.Agent;

/// <summary>The agents' request-body encoder: Brotli that decodes to the same bytes, and only when it shrinks the body.</summary>
public sealed class BodyCompressionTests
{
    [Theory]
    [InlineData(200)]
    [InlineData(70_000)] // above the best-quality bound: the faster quality, same bytes back
    public void A_base64_heavy_body_is_compressed_and_decodes_to_the_same_bytes(int payloadBytes)
    {
        var random = new Random(payloadBytes);
        var payload = new byte[payloadBytes];
        random.NextBytes(payload);
        var body = Encoding.UTF8.GetBytes($"{{\"clientId\":\"hospital-1\",\"maskedInput\":\"{Convert.ToBase64String(payload)}\"}}");

        var (sent, compressed) = BodyCompression.Compress(body);
        Assert.True(compressed);
        Assert.True(sent.Length < body.Length);
        using var decoder = new BrotliStream(new MemoryStream(sent), CompressionMode.Decompress);
        using var back = new MemoryStream();
        decoder.CopyTo(back);
        Assert.Equal(body, back.ToArray());
        Assert.Equal("br", BodyCompression.Encoding);
    }

    [Fact]
    public void A_small_or_incompressible_body_is_sent_as_it_is()
    {
        var small = "{\"ok\":true}"u8.ToArray();
        var (sentSmall, smallCompressed) = BodyCompression.Compress(small);
        Assert.False(smallCompressed);
        Assert.Same(small, sentSmall);

        var noise = new byte[4096];
        new Random(5).NextBytes(noise); // raw random bytes: Brotli cannot shrink them
        var (sentNoise, noiseCompressed) = BodyCompression.Compress(noise);
        Assert.False(noiseCompressed);
        Assert.Same(noise, sentNoise);
    }
}
