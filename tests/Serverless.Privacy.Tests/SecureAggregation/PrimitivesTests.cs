using System.Security.Cryptography;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

public sealed class PrimitivesTests
{
    [Fact]
    public void Compressed_public_keys_import_to_the_same_point_for_both_parities()
    {
        var parities = new HashSet<byte>();
        for (var i = 0; i < 40; i++)
        {
            using var key = SecAggCrypto.NewKeyPair();
            var q = key.ExportParameters(false).Q;
            var encoded = SecAggCrypto.ExportPublic(key);
            Assert.Equal(SecAggCrypto.PublicKeyLength, encoded.Length);
            parities.Add(encoded[0]);
            Assert.True(SecAggCrypto.TryImportPublic(encoded, out var imported));
            using (imported)
            {
                var back = imported!.ExportParameters().Q;
                Assert.Equal(q.X, back.X);
                Assert.Equal(q.Y, back.Y);
            }
            // The other parity is the negated point: valid, but a different key.
            var flipped = (byte[])encoded.Clone();
            flipped[0] ^= 1;
            Assert.True(SecAggCrypto.TryImportPublic(flipped, out var negated));
            using (negated) Assert.NotEqual(q.Y, negated!.ExportParameters().Q.Y);
        }
        Assert.Equal(new HashSet<byte> { 0x02, 0x03 }, parities);
    }

    [Fact]
    public void Compressed_public_keys_off_the_curve_or_badly_encoded_are_refused()
    {
        using var key = SecAggCrypto.NewKeyPair();
        var q = key.ExportParameters(false).Q;
        Assert.False(SecAggCrypto.TryImportPublic([0x04, .. q.X!, .. q.Y!], out _));   // uncompressed is not this wire format
        Assert.False(SecAggCrypto.TryImportPublic([0x04, .. q.X!], out _));
        Assert.False(SecAggCrypto.TryImportPublic(SecAggCrypto.ExportPublic(key)[..32], out _));
        Assert.False(SecAggCrypto.TryImportPublic([0x02, .. Enumerable.Repeat((byte)0xff, 32)], out _));   // x >= p
        // About half of all x have no point; find some by counting up from a random x and check they are refused.
        var x = RandomNumberGenerator.GetBytes(32);
        x[0] = 0x10;
        var refused = 0;
        for (var i = 0; i < 64; i++, x[31]++)
        {
            var ok = SecAggCrypto.TryImportPublic([0x02, .. x], out var k);
            k?.Dispose();
            if (!ok) refused++;
        }
        Assert.InRange(refused, 12, 52);   // binomial(64, 1/2): outside this range with probability below 1e-6
    }

    [Fact]
    public void Shamir_decoding_corrects_up_to_half_the_spare_shares_anywhere_seeded()
    {
        for (var seed = 0; seed < 60; seed++)
        {
            var rng = new Random(seed);
            var n = rng.Next(3, 30);
            var t = rng.Next(1, n + 1);
            var xs = Enumerable.Range(1, 40).OrderBy(_ => rng.Next()).Take(n).ToArray();
            var secret = new byte[32];
            rng.NextBytes(secret);
            var shares = ShamirSecretSharing.Split(secret, t, xs);
            var errors = rng.Next(0, (n - t) / 2 + 1);
            var corrupted = Enumerable.Range(0, n).OrderBy(_ => rng.Next()).Take(errors).Order().ToArray();
            foreach (var i in corrupted)
            {
                var word = rng.Next(0, shares[i].Length / 8) * 8;   // one chunk off (shares stay field elements)
                var y = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(shares[i].AsSpan(word));
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(shares[i].AsSpan(word), (y + 1 + (ulong)rng.Next(1000)) % ShamirSecretSharing.Prime);
            }
            var decoded = ShamirSecretSharing.DecodeWithErrors(xs, shares, t, 32, out var wrong);
            Assert.True(decoded is not null, $"seed {seed}: n {n} t {t} errors {errors} not decoded");
            Assert.Equal(secret, decoded);
            Assert.Equal(corrupted, wrong);
        }
    }

    [Fact]
    public void Shamir_any_t_shares_recover_the_secret_and_t_minus_1_do_not()
    {
        var secret = RandomNumberGenerator.GetBytes(32);
        int[] xs = [1, 2, 3, 5, 8, 13, 21];
        var shares = ShamirSecretSharing.Split(secret, 4, xs);
        Assert.Equal(secret, ShamirSecretSharing.Combine([1, 3, 8, 21], [shares[0], shares[2], shares[4], shares[6]], 32));
        Assert.Equal(secret, ShamirSecretSharing.Combine([13, 2, 5, 1], [shares[5], shares[1], shares[3], shares[0]], 32));
        byte[]? wrong = null;
        try { wrong = ShamirSecretSharing.Combine([1, 2, 3], [shares[0], shares[1], shares[2]], 32); } catch (ArgumentException) { }
        Assert.NotEqual(secret, wrong);
    }

    [Fact]
    public void Shamir_rejects_bad_arguments()
    {
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[32], 3, [1, 1, 2]));
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[32], 4, [1, 2, 3]));
        Assert.Throws<ArgumentException>(() => ShamirSecretSharing.Split(new byte[32], 2, [0, 1]));
        var bad = new byte[40];
        Array.Fill(bad, (byte)0xFF);
        Assert.False(ShamirSecretSharing.IsWellFormed(bad, 32));
    }

    [Fact]
    public void Field_multiplication_matches_BigInteger()
    {
        var rng = new Random(3);
        for (var i = 0; i < 1000; i++)
        {
            var a = (ulong)rng.NextInt64(0, (long)ShamirSecretSharing.Prime);
            var b = (ulong)rng.NextInt64(0, (long)ShamirSecretSharing.Prime);
            var expected = (ulong)(System.Numerics.BigInteger.Multiply(a, b) % ShamirSecretSharing.Prime);
            Assert.Equal(expected, ShamirSecretSharing.Mul(a, b));
            if (a != 0) Assert.Equal(1UL, ShamirSecretSharing.Mul(a, ShamirSecretSharing.Inverse(a)));
        }
    }

    [Fact]
    public void Prg_matches_aes_ctr_definition_and_add_then_subtract_cancels()
    {
        var seed = RandomNumberGenerator.GetBytes(32);
        var stream = new uint[10_003];
        MaskExpander.Expand(seed, stream);
        // Block i of the keystream is AES_k(i as 128-bit little-endian counter).
        using var aes = Aes.Create();
        aes.Key = seed;
        foreach (var block in new long[] { 0, 1, 1023, 1024, 2499 })
        {
            var counter = new byte[16];
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(counter, block % 1024);
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(counter.AsSpan(8), block / 1024);
            var expected = aes.EncryptEcb(counter, PaddingMode.None);
            Assert.Equal(expected, System.Runtime.InteropServices.MemoryMarshal.AsBytes(stream.AsSpan((int)block * 4, 4)).ToArray());
        }
        var acc = Enumerable.Range(0, 10_003).Select(i => (uint)i).ToArray();
        MaskExpander.Apply(seed, acc, subtract: false);
        MaskExpander.Apply(seed, acc, subtract: true);
        Assert.Equal(Enumerable.Range(0, 10_003).Select(i => (uint)i), acc);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(16)]
    [InlineData(20)]
    [InlineData(8)]
    [InlineData(11)]
    public void Ring_packing_round_trips(int bits)
    {
        var rng = new Random(bits);
        var mask = bits == 32 ? uint.MaxValue : (1u << bits) - 1;
        var values = Enumerable.Range(0, 333).Select(_ => (uint)rng.NextInt64(0, (long)mask + 1)).ToArray();
        var packed = new byte[RingCodec.PackedLength(values.Length, bits)];
        RingCodec.Pack(values, bits, packed);
        var back = new uint[values.Length];
        RingCodec.Unpack(packed, bits, back);
        Assert.Equal(values, back);
    }

    [Fact]
    public void Fixed_point_sum_of_max_clients_decodes_without_wrapping()
    {
        var codec = new RingCodec(24, 1.0f, 50);
        var rng = new Random(1);
        var sum = new uint[64];
        var expected = new double[64];
        var buf = new uint[64];
        for (var c = 0; c < 50; c++)
        {
            var v = Enumerable.Range(0, 64).Select(i => c % 2 == 0 ? 1.0f : (float)(rng.NextDouble() * 2 - 1)).ToArray();
            codec.Encode(v, buf);
            for (var i = 0; i < 64; i++) { sum[i] = (sum[i] + buf[i]) & codec.Mask; expected[i] += v[i]; }
        }
        var decoded = new float[64];
        codec.Decode(sum, decoded);
        for (var i = 0; i < 64; i++) Assert.InRange(decoded[i] - expected[i], -50 / codec.Scale, 50 / codec.Scale);
    }

    [Fact]
    public void Harary_graph_is_regular_symmetric_and_deterministic()
    {
        var ids = Enumerable.Range(1, 101).ToArray();
        var g1 = NeighbourGraph.Harary(ids, 14, [1, 2, 3]);
        var g2 = NeighbourGraph.Harary(ids, 14, [1, 2, 3]);
        var g3 = NeighbourGraph.Harary(ids, 14, [4]);
        foreach (var u in ids)
        {
            Assert.Equal(14, g1.NeighboursOf(u).Count);
            Assert.Equal(g1.NeighboursOf(u), g2.NeighboursOf(u));
            foreach (var v in g1.NeighboursOf(u)) Assert.True(g1.AreNeighbours(v, u));
        }
        Assert.Contains(ids, u => !g1.NeighboursOf(u).SequenceEqual(g3.NeighboursOf(u)));
    }
}
