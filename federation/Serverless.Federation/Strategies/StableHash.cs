namespace Serverless.Federation.Strategies;

/// <summary>FNV-1a: a hash that is the same in every process (HashCode and string.GetHashCode are randomised per process), for seeds that must replay.</summary>
internal static class StableHash
{
    public static int Of(int a, int b, string? s = null)
    {
        var h = 2166136261u;
        void Mix(uint v) { for (var i = 0; i < 4; i++) { h ^= (v >> (8 * i)) & 0xFF; h *= 16777619u; } }
        Mix((uint)a);
        Mix((uint)b);
        foreach (var c in s ?? "") Mix(c);
        return (int)(h & int.MaxValue);
    }
}
