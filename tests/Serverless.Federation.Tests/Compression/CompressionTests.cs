using Serverless.Federation.Compression;

namespace Serverless.Federation.Tests.Compression;

public sealed class CompressionTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public void Quantization_round_trips_within_its_bound(int bits)
    {
        var rng = new Random(bits);
        var v = Enumerable.Range(0, 1000).Select(_ => (float)(rng.NextDouble() * 4 - 1)).ToArray();
        var q = StochasticQuantizer.Quantize(v, bits, 128, rng);
        var back = new float[v.Length];
        StochasticQuantizer.Dequantize(q, back);
        for (var i = 0; i < v.Length; i++)
            Assert.True(Math.Abs(back[i] - v[i]) <= StochasticQuantizer.ErrorBound(q, i / 128) * (1 + 1e-5) + 1e-6, $"entry {i}");
    }

    [Fact]
    public void Quantization_is_unbiased_mean_over_many_draws_within_a_CLT_bound()
    {
        var v = new float[] { -1f, 0.123f, 0.5f, 0.77f, 0.999f, 1f, -0.31f, 0.0042f };
        const int draws = 20_000;
        var rng = new Random(11);
        var sums = new double[v.Length];
        var back = new float[v.Length];
        for (var d = 0; d < draws; d++)
        {
            StochasticQuantizer.Dequantize(StochasticQuantizer.Quantize(v, 2, 8, rng), back);
            for (var i = 0; i < v.Length; i++) sums[i] += back[i];
        }
        // Range [-1, 1] with 2 bits: step 2/3; a single draw's std is at most step/2, so the mean's is step/(2 sqrt(draws)).
        var step = 2.0 / 3;
        var bound = 5 * step / 2 / Math.Sqrt(draws);   // 5 sigma
        for (var i = 0; i < v.Length; i++) Assert.InRange(sums[i] / draws - v[i], -bound, bound);
    }

    [Fact]
    public void Top_k_with_error_feedback_loses_nothing_only_delays()
    {
        var rng = new Random(5);
        var sp = new TopKSparsifier(100, 0.1);
        var sent = new double[100];
        var total = new double[100];
        for (var round = 0; round < 20; round++)
        {
            var u = Enumerable.Range(0, 100).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
            for (var i = 0; i < 100; i++) total[i] += u[i];
            var s = sp.Compress(u);
            Assert.Equal(10, s.Indices.Length);
            var dense = new float[100];
            s.ToDense(dense);
            for (var i = 0; i < 100; i++) sent[i] += dense[i];
        }
        for (var i = 0; i < 100; i++) Assert.Equal(total[i], sent[i] + sp.Residual[i], 4);
        Assert.Equal([1, 3], TopKSparsifier.TopIndices([0.1f, -5f, 0.2f, 4f], 2));
    }

    [Fact]
    public void Frames_round_trip_and_report_their_size()
    {
        var rng = new Random(2);
        var v = Enumerable.Range(0, 10_000).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var dense = UpdateFrame.EncodeDense(v);
        Assert.Equal(v, UpdateFrame.DecodeToDense(dense, v.Length));
        var q = StochasticQuantizer.Quantize(v, 8, 256, rng);
        var qf = UpdateFrame.EncodeQuantized(q);
        var back = new float[v.Length];
        StochasticQuantizer.Dequantize(q, back);
        Assert.Equal(back, UpdateFrame.DecodeToDense(qf, v.Length));
        Assert.True(qf.Length < dense.Length * 0.3, $"8-bit frame {qf.Length} vs dense {dense.Length}");
        var s = new TopKSparsifier(v.Length, 0.05).Compress(v);
        var sf = UpdateFrame.EncodeSparse(s);
        var sd = new float[v.Length];
        s.ToDense(sd);
        Assert.Equal(sd, UpdateFrame.DecodeToDense(sf, v.Length));
        var ring = UpdateFrame.Decode(UpdateFrame.EncodeRing(3, 16, new byte[6]));
        Assert.Equal((FrameKind.Ring, 16), (ring.Kind, ring.RingBits));
    }

    [Fact]
    public void Corrupted_truncated_or_forged_frames_are_rejected()
    {
        var frame = UpdateFrame.EncodeDense([1f, 2f, 3f]);
        var flipped = (byte[])frame.Clone();
        flipped[12] ^= 1;
        Assert.Contains("checksum", Assert.Throws<FrameFormatException>(() => UpdateFrame.Decode(flipped)).Message);
        Assert.Throws<FrameFormatException>(() => UpdateFrame.Decode(frame.AsSpan(0, frame.Length - 1)));
        Assert.Throws<FrameFormatException>(() => UpdateFrame.Decode(new byte[5]));
        var badMagic = (byte[])frame.Clone();
        badMagic[0] = (byte)'X';
        Assert.Contains("magic", Assert.Throws<FrameFormatException>(() => UpdateFrame.Decode(badMagic)).Message);
    }

    /// <summary>A 29-byte sparse frame: header, count and checksum, declaring <paramref name="length"/> entries and <paramref name="count"/> non-zeros.</summary>
    private static byte[] TinySparseFrame(int length, int count)
    {
        var frame = new byte[29];
        "FLU"u8.CopyTo(frame);
        frame[3] = 1;
        frame[4] = (byte)FrameKind.Sparse;
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(5), length);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(frame.AsSpan(9), count);
        System.Security.Cryptography.SHA256.HashData(frame.AsSpan(0, 13)).AsSpan(0, 16).CopyTo(frame.AsSpan(13));
        return frame;
    }

    [Fact]
    public void A_29_byte_frame_declaring_a_huge_sparse_count_is_refused_without_a_large_allocation()
    {
        var frame = TinySparseFrame(1 << 28, 1 << 28);
        Assert.Equal(29, frame.Length);
        var before = GC.GetAllocatedBytesForCurrentThread();
        Assert.Throws<FrameFormatException>(() => UpdateFrame.Decode(frame));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"decoding 29 bytes allocated {allocated} bytes");
    }

    [Fact]
    public void A_29_byte_frame_declaring_more_entries_than_the_model_is_refused_without_a_large_allocation()
    {
        // Well formed (no non-zeros), but it declares 2^28 entries against a model of 1,000.
        var frame = TinySparseFrame(1 << 28, 0);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<FrameFormatException>(() => UpdateFrame.DecodeToDense(frame, expectedLength: 1000));
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 1 << 20, $"decoding 29 bytes allocated {allocated} bytes");
        Assert.Contains("out of range", e.Message);
        // The same frame at the model's size decodes to zeros, and a shorter declared length is refused too.
        Assert.Equal(new float[1000], UpdateFrame.DecodeToDense(TinySparseFrame(1000, 0), 1000));
        Assert.Throws<FrameFormatException>(() => UpdateFrame.DecodeToDense(TinySparseFrame(999, 0), 1000));
    }
}
