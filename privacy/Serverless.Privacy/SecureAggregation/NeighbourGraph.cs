using System.Buffers.Binary;

namespace Serverless.Privacy.SecureAggregation;

/// <summary>
/// Who masks with whom. SecAgg (Bonawitz et al. 2017) is the complete graph; SecAgg+ (Bell et al.,
/// CCS 2020) uses a Harary graph H(k, n) — each node joined to its k/2 nearest positions on either
/// side of a ring — over a random permutation of the clients derived from a public seed, so every
/// client masks with and shares to only k = O(log n) neighbours and total cost grows as n log n.
/// Everyone recomputes the same graph from (client ids, degree, seed); nothing about it is secret.
/// </summary>
public sealed class NeighbourGraph
{
    private readonly Dictionary<int, int[]> _neighbours;

    /// <summary>The clients the graph spans, ascending.</summary>
    public IReadOnlyList<int> Clients { get; }

    /// <summary>True for the complete graph (plain SecAgg).</summary>
    public bool IsComplete { get; }

    /// <summary>Neighbours per client (n - 1 for the complete graph).</summary>
    public int Degree { get; }

    private NeighbourGraph(int[] clients, Dictionary<int, int[]> neighbours, bool complete, int degree)
    {
        Clients = clients;
        _neighbours = neighbours;
        IsComplete = complete;
        Degree = degree;
    }

    /// <summary>The complete graph over <paramref name="clientIds"/> (plain SecAgg).</summary>
    public static NeighbourGraph Complete(IReadOnlyCollection<int> clientIds)
    {
        var clients = Validate(clientIds);
        var map = new Dictionary<int, int[]>(clients.Length);
        foreach (var c in clients)
        {
            var list = new int[clients.Length - 1];
            var k = 0;
            foreach (var d in clients) if (d != c) list[k++] = d;
            map[c] = list;
        }
        return new NeighbourGraph(clients, map, complete: true, clients.Length - 1);
    }

    /// <summary>A Harary graph of even degree <paramref name="degree"/> over a permutation of the
    /// clients drawn from <paramref name="publicSeed"/> (SecAgg+). A degree at or above n - 1 gives the complete graph.</summary>
    public static NeighbourGraph Harary(IReadOnlyCollection<int> clientIds, int degree, ReadOnlySpan<byte> publicSeed)
    {
        var clients = Validate(clientIds);
        var n = clients.Length;
        if (degree >= n - 1) return Complete(clients);
        if (degree < 2 || degree % 2 != 0) throw new ArgumentOutOfRangeException(nameof(degree), "Harary degree must be even and at least 2.");
        var order = (int[])clients.Clone();
        Shuffle(order, publicSeed);
        var map = new Dictionary<int, int[]>(n);
        var half = degree / 2;
        for (var pos = 0; pos < n; pos++)
        {
            var list = new int[degree];
            var k = 0;
            for (var d = 1; d <= half; d++)
            {
                list[k++] = order[(pos + d) % n];
                list[k++] = order[(pos - d + n) % n];
            }
            Array.Sort(list);
            map[order[pos]] = list;
        }
        return new NeighbourGraph(clients, map, complete: false, degree);
    }

    /// <summary>Bell et al.'s degree choice, k = O(log n): the even number nearest 3*log2(n), capped at n - 1.</summary>
    public static int RecommendedDegree(int clientCount)
    {
        if (clientCount <= 2) return Math.Max(1, clientCount - 1);
        var k = (int)Math.Ceiling(3 * Math.Log2(clientCount));
        if (k % 2 != 0) k++;
        return Math.Min(k, clientCount - 1);
    }

    /// <summary>Neighbours of <paramref name="client"/>, ascending (never itself).</summary>
    /// <exception cref="ArgumentException">the client is not in the graph.</exception>
    public IReadOnlyList<int> NeighboursOf(int client) =>
        _neighbours.TryGetValue(client, out var list) ? list : throw new ArgumentException($"Client {client} is not in the graph.", nameof(client));

    /// <summary>True when <paramref name="a"/> and <paramref name="b"/> mask with each other.</summary>
    public bool AreNeighbours(int a, int b) =>
        a != b && _neighbours.TryGetValue(a, out var list) && Array.BinarySearch(list, b) >= 0;

    /// <summary>True when the client is part of the graph.</summary>
    public bool Contains(int client) => _neighbours.ContainsKey(client);

    private static int[] Validate(IReadOnlyCollection<int> ids)
    {
        var clients = ids.ToArray();
        Array.Sort(clients);
        if (clients.Length < 2) throw new ArgumentException("Secure aggregation needs at least two clients.", nameof(ids));
        for (var i = 0; i < clients.Length; i++)
        {
            if (clients[i] <= 0) throw new ArgumentException($"Client id {clients[i]} must be positive (ids are share coordinates).", nameof(ids));
            if (i > 0 && clients[i] == clients[i - 1]) throw new ArgumentException($"Client id {clients[i]} repeats.", nameof(ids));
        }
        return clients;
    }

    // Fisher-Yates with indices drawn from SHA-256(seed || counter): deterministic on every platform.
    private static void Shuffle(int[] items, ReadOnlySpan<byte> seed)
    {
        var input = new byte[seed.Length + 8];
        seed.CopyTo(input);
        Span<byte> digest = stackalloc byte[32];
        long counter = 0;
        for (var i = items.Length - 1; i > 0; i--)
        {
            ulong r;
            var bound = (ulong)(i + 1);
            var limit = ulong.MaxValue - ulong.MaxValue % bound;
            do
            {
                BinaryPrimitives.WriteInt64LittleEndian(input.AsSpan(seed.Length), counter++);
                SHA256.HashData(input, digest);
                r = BinaryPrimitives.ReadUInt64LittleEndian(digest);
            } while (r >= limit);
            var j = (int)(r % bound);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
