using System.Security.Cryptography;
using System.Text.Json;

namespace Serverless.Inference;

/// <summary>
/// Everything a partner and the server must agree on to evaluate one HE model version, computed
/// once per model version by <see cref="HeModel.Create"/>: the CKKS parameters (and their SHA-256
/// hash, which every key, batch and result carries), the input layout (one ciphertext per feature
/// per time step plus one per step for the visit mask, each slot a different record), the levels
/// the circuit consumes, and the Galois elements it rotates by (none: record-per-slot packing
/// needs no rotations, so partners register only a public key and a relinearization key).
/// Serializable as JSON (<see cref="ToJson"/> / <see cref="FromJson"/>); a plan read back is
/// re-derived and checked, never trusted.
/// </summary>
public sealed class EvaluationPlan
{
    /// <summary>
    /// Upper bound on the records of one batch unless a caller chooses another: 2 ciphertext groups at N = 16384
    /// (about 340 MB of upload and 700 MB in memory when read whole; <see cref="EncryptedBatchReader"/> reads one group at a time).
    /// </summary>
    public const int DefaultMaxRecords = 16_384;

    private readonly Lazy<CkksContext> _context;

    internal EvaluationPlan(CkksParameters parameters, string modelVersion, int features, int steps, int levelsConsumed, int maxRecords)
    {
        Parameters = parameters;
        ModelVersion = modelVersion;
        Features = features;
        Steps = steps;
        LevelsConsumed = levelsConsumed;
        MaxRecords = maxRecords;
        // Evaluation parallelizes over independent ciphertexts, so the context's own limb threads stay off.
        _context = new Lazy<CkksContext>(() => new CkksContext(parameters, parallelLimbs: false), LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>The CKKS parameter set (N, modulus chain, special prime, scale).</summary>
    public CkksParameters Parameters { get; }

    /// <summary>SHA-256 of the canonical parameters; keys, batches and results must carry the same.</summary>
    public ReadOnlyMemory<byte> ParameterHash => Parameters.Hash;

    /// <summary>Free-form model version label (the model registry's id), carried for audit.</summary>
    public string ModelVersion { get; }

    /// <summary>Features per time step (input layout: <see cref="Features"/> × <see cref="Steps"/>).</summary>
    public int Features { get; }

    /// <summary>Time steps (visits) per record.</summary>
    public int Steps { get; }

    /// <summary>Input ciphertexts per group: one per (step, feature), then one mask ciphertext per step.</summary>
    public int CiphertextsPerGroup => Steps * (Features + 1);

    /// <summary>Records per ciphertext group: one per slot (N/2).</summary>
    public int SlotsPerCiphertext => Parameters.N / 2;

    /// <summary>Levels (rescales) the circuit consumes; at most <see cref="LevelsAvailable"/>.</summary>
    public int LevelsConsumed { get; }

    /// <summary>Levels a fresh ciphertext has (the top level L of the modulus chain).</summary>
    public int LevelsAvailable => Parameters.MaxLevel;

    /// <summary>Galois elements the evaluation needs keys for: none (no rotations with record-per-slot packing).</summary>
    public IReadOnlyList<ulong> GaloisElements { get; } = [];

    /// <summary>Always true: polynomial activations multiply ciphertexts.</summary>
    public bool NeedsRelinearizationKey => true;

    /// <summary>Most records a batch may carry; larger batches are refused when read.</summary>
    public int MaxRecords { get; }

    /// <summary>Most ciphertext groups a batch may carry.</summary>
    public int MaxGroups => (MaxRecords + SlotsPerCiphertext - 1) / SlotsPerCiphertext;

    /// <summary>The parameters' precomputed tables, built once per plan and shared (thread-safe).</summary>
    public CkksContext Context => _context.Value;

    /// <summary>Bytes of one serialized input ciphertext group (seeded ciphertexts at the top level).</summary>
    public long GroupBytesEstimate => (long)CiphertextsPerGroup * (Parameters.MaxLevel + 1) * Parameters.N * 8;

    public string ToJson() => JsonSerializer.Serialize(new Dto(
        1, ModelVersion, Features, Steps, LevelsConsumed, MaxRecords,
        Parameters.N, [.. Parameters.ModulusBits], Parameters.SpecialModulusBits, Parameters.Scale,
        Parameters.IsInsecureForTests, Convert.ToHexString(Parameters.Hash.Span)));

    /// <summary>Reads a plan and re-derives its parameters; the stored hash must match the derived one.</summary>
    /// <param name="json">A plan written by <see cref="ToJson"/>.</param>
    /// <param name="allowInsecureForTests">Accept parameter sets above the 128-bit bound (tests only).</param>
    /// <exception cref="HeFormatException">Malformed JSON, out-of-range fields, insecure parameters, or a hash mismatch.</exception>
    public static EvaluationPlan FromJson(string json, bool allowInsecureForTests = false)
    {
        ArgumentNullException.ThrowIfNull(json);
        Dto? dto;
        try
        {
            dto = JsonSerializer.Deserialize<Dto>(json);
        }
        catch (JsonException e)
        {
            throw new HeFormatException($"evaluation plan: not valid JSON ({e.Message})", e);
        }
        if (dto is null || dto.ModulusBits is null || dto.ParameterHash is null || dto.ModelVersion is null)
            throw new HeFormatException("evaluation plan: fields missing");
        if (dto.Version != 1) throw new HeFormatException($"evaluation plan: unsupported version {dto.Version}");
        if (dto.Insecure && !allowInsecureForTests) throw new HeFormatException("evaluation plan: the parameters exceed the 128-bit security bound; refusing them");
        CkksParameters p;
        try
        {
            p = CkksParameters.Create(dto.N, dto.ModulusBits, dto.SpecialModulusBits, dto.Scale, allowInsecureForTests);
        }
        catch (ArgumentException e)
        {
            throw new HeFormatException($"evaluation plan: invalid parameters: {e.Message}", e);
        }
        byte[] hash;
        try
        {
            hash = Convert.FromHexString(dto.ParameterHash);
        }
        catch (FormatException e)
        {
            throw new HeFormatException("evaluation plan: parameter hash is not hex", e);
        }
        if (!CryptographicOperations.FixedTimeEquals(hash, p.Hash.Span))
            throw new HeFormatException("evaluation plan: parameter hash does not match the parameters");
        if (dto.Features is < 1 or > 4096 || dto.Steps is < 1 or > 64)
            throw new HeFormatException($"evaluation plan: layout {dto.Steps} steps × {dto.Features} features is out of range");
        if (dto.LevelsConsumed < 1 || dto.LevelsConsumed > p.MaxLevel)
            throw new HeFormatException($"evaluation plan: {dto.LevelsConsumed} levels consumed, the parameters have {p.MaxLevel}");
        if (dto.MaxRecords < 1) throw new HeFormatException("evaluation plan: max records must be positive");
        return new EvaluationPlan(p, dto.ModelVersion, dto.Features, dto.Steps, dto.LevelsConsumed, dto.MaxRecords);
    }

    /// <summary>Throws <see cref="HeFormatException"/> unless <paramref name="hash"/> is this plan's parameter hash.</summary>
    internal void CheckParameterHash(ReadOnlySpan<byte> hash, string what)
    {
        if (hash.Length != 32 || !CryptographicOperations.FixedTimeEquals(hash, Parameters.Hash.Span))
            throw new HeFormatException($"{what}: parameter hash mismatch, it was made under other CKKS parameters than this model's plan").With(InferenceErrors.WrongParameters);
    }

    public override string ToString() =>
        $"plan {ModelVersion}: {Steps}×{Features} inputs, {SlotsPerCiphertext} records per group, {LevelsConsumed}/{LevelsAvailable} levels, no rotations, {Parameters}";

    private sealed record Dto(
        int Version, string ModelVersion, int Features, int Steps, int LevelsConsumed, int MaxRecords,
        int N, int[] ModulusBits, int SpecialModulusBits, double Scale, bool Insecure, string ParameterHash);
}
