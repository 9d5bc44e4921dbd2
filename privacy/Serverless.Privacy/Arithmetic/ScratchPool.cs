using System.Collections.Concurrent;

namespace Serverless.Privacy.Arithmetic;

/// <summary>
/// Scratch buffers for the lattice kernels. ArrayPool.Shared keeps few arrays per size and trims
/// them under memory pressure; one key switch holds seven 32K-word buffers at once, so it kept
/// allocating 256 KB large-object arrays (and triggering gen-2 collections). This pool keeps up
/// to 64 arrays per power-of-two size, which bounds it by the peak concurrent use.
/// </summary>
internal static class ScratchPool
{
    private const int MaxPerBucket = 64;
    private static readonly ConcurrentBag<ulong[]>[] s_buckets = CreateBuckets();

    private static ConcurrentBag<ulong[]>[] CreateBuckets()
    {
        var buckets = new ConcurrentBag<ulong[]>[31];
        for (var i = 0; i < buckets.Length; i++) buckets[i] = [];
        return buckets;
    }

    /// <summary>An array of at least <paramref name="minimumLength"/> words (contents undefined).</summary>
    public static ulong[] Rent(int minimumLength)
    {
        var bucket = BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, minimumLength)));
        return s_buckets[bucket].TryTake(out var array) ? array : new ulong[1 << bucket];
    }

    /// <summary>Returns an array that held a secret (encryption randomness, flooding noise, a plaintext's values): zeroed first, so no later renter reads it.</summary>
    public static void ReturnSecret(ulong[] array)
    {
        Array.Clear(array);
        Return(array);
    }

    public static void Return(ulong[] array)
    {
        if (!BitOperations.IsPow2(array.Length) || array.Length < 16) return;
        var bag = s_buckets[BitOperations.Log2((uint)array.Length)];
        if (bag.Count < MaxPerBucket) bag.Add(array);
    }
}
