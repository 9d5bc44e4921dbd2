using System.Diagnostics;
using System.Security.Cryptography;

namespace Serverless.Inference;

/// <summary>
/// The public half of a partner's keys, what the server stores per partner and model version: the
/// public encryption key, the relinearization key, and the Galois keys the plan needs (none for
/// record-per-slot packing). Carries no secret material. <see cref="KeyId"/> (SHA-256 of the
/// serialized public key) binds batches and results to these keys.
/// </summary>
public sealed class EvaluationKeys
{
    internal EvaluationKeys(EvaluationPlan plan, PublicKey publicKey, RelinearizationKey relinearizationKey, byte[] publicKeyBytes)
    {
        Plan = plan;
        PublicKey = publicKey;
        RelinearizationKey = relinearizationKey;
        KeyId = SHA256.HashData(publicKeyBytes);
        _publicKeyBytes = publicKeyBytes;
    }

    private readonly byte[] _publicKeyBytes;

    public EvaluationPlan Plan { get; }

    public PublicKey PublicKey { get; }

    public RelinearizationKey RelinearizationKey { get; }

    /// <summary>SHA-256 of the serialized public key (32 bytes); batches and results carry it.</summary>
    public ReadOnlyMemory<byte> KeyId { get; }

    /// <summary>Hex of <see cref="KeyId"/>, handy as a blob name or log field.</summary>
    public string KeyIdHex => Convert.ToHexString(KeyId.Span);

    /// <summary>Serialized bundle: header, public key, relinearization key, Galois key count (0).</summary>
    public byte[] ToBytes() => BlobFormat.ToBytes(WriteTo);

    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        BlobFormat.WriteHeader(stream, BlobFormat.Kind.EvaluationKeys, Plan.ParameterHash.Span);
        BlobFormat.WriteBlob(stream, _publicKeyBytes);
        BlobFormat.WriteBlob(stream, CkksSerializer.Save(RelinearizationKey));
        BlobFormat.WriteInt32(stream, 0);
    }

    /// <summary>Reads and validates a bundle against <paramref name="plan"/> (parameter hash, sizes, every residue).</summary>
    /// <exception cref="HeFormatException">Malformed, truncated, other parameters, or Galois keys the plan does not use.</exception>
    public static EvaluationKeys Read(ReadOnlyMemory<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s => Read(s, plan));
    }

    /// <inheritdoc cref="Read(ReadOnlyMemory{byte}, EvaluationPlan)"/>
    public static EvaluationKeys Read(Stream stream, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(plan);
        var r = new BlobReader(stream, "evaluation keys");
        r.ReadHeader(BlobFormat.Kind.EvaluationKeys, plan);
        var ctx = plan.Context;
        var pkBytes = r.ReadBlob("public key", PublicKeyMaxBytes(ctx));
        var pk = CkksSerializer.LoadPublicKey(ctx, pkBytes);
        var rlk = CkksSerializer.LoadRelinearizationKey(ctx, r.ReadBlob("relinearization key", RelinearizationKeyMaxBytes(ctx)));
        var galois = r.ReadInt32InRange("Galois key count", 0, 0);
        _ = galois;
        r.ExpectEnd();
        return new EvaluationKeys(plan, pk, rlk, pkBytes);
    }

    private static int PublicKeyMaxBytes(CkksContext ctx) => 64 + 32 + (ctx.MaxLevel + 1) * ctx.N * 8;

    private static int RelinearizationKeyMaxBytes(CkksContext ctx) =>
        (int)Math.Min(int.MaxValue / 2, 64 + 32 + (long)(ctx.MaxLevel + 1) * (ctx.MaxLevel + 2) * ctx.N * 8);

    /// <summary>Upper bound on a serialized bundle (header, both key blobs with their prefixes, the Galois count).</summary>
    internal static int MaxBytes(CkksContext ctx) =>
        (int)Math.Min(int.MaxValue - 64, 7 + 32 + 4 + (long)PublicKeyMaxBytes(ctx) + 4 + RelinearizationKeyMaxBytes(ctx) + 4);

    /// <summary>Throws <see cref="HeFormatException"/> unless <paramref name="keyId"/> is this bundle's key id.</summary>
    internal void CheckKeyId(ReadOnlySpan<byte> keyId, string what)
    {
        if (!CryptographicOperations.FixedTimeEquals(keyId, KeyId.Span))
            throw new HeFormatException($"{what}: encrypted under other keys (key id {Convert.ToHexString(keyId)[..16]}…, these evaluation keys are {KeyIdHex[..16]}…)").With(InferenceErrors.WrongKeys);
    }
}

/// <summary>
/// A partner's key pair for one plan: the CKKS secret key (never leaves the partner) and the
/// <see cref="EvaluationKeys"/> it registers with the server. Dispose to zero the secret.
/// </summary>
public sealed class PartnerKeys : IDisposable
{
    private PartnerKeys(EvaluationPlan plan, SecretKey secretKey, EvaluationKeys evaluationKeys)
    {
        Plan = plan;
        SecretKey = secretKey;
        EvaluationKeys = evaluationKeys;
    }

    public EvaluationPlan Plan { get; }

    /// <summary>The secret key. Keep it with the partner.</summary>
    public SecretKey SecretKey { get; }

    /// <summary>The public bundle to register with the server (<see cref="EvaluationKeys.ToBytes"/>).</summary>
    public EvaluationKeys EvaluationKeys { get; }

    /// <summary>Generates a fresh secret key (from RandomNumberGenerator) and the evaluation keys the plan needs.</summary>
    public static PartnerKeys Generate(EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var ctx = plan.Context;
        var kg = new KeyGenerator(ctx);
        var pk = kg.CreatePublicKey();
        var rlk = kg.CreateRelinearizationKey();
        return new PartnerKeys(plan, kg.SecretKey, new EvaluationKeys(plan, pk, rlk, CkksSerializer.Save(pk)));
    }

    /// <summary>Secret key and evaluation keys as one blob. It contains the secret: protect it (0600 file, envelope encryption).</summary>
    public byte[] Export()
    {
        var sk = CkksSerializer.Save(SecretKey);
        var ek = EvaluationKeys.ToBytes();
        // Written into a buffer of the exact size: a growing MemoryStream would leave copies of the secret key behind.
        var blob = new byte[BlobFormat.HeaderLength + 4 + sk.Length + 4 + ek.Length];
        try
        {
            using var ms = new MemoryStream(blob);
            BlobFormat.WriteHeader(ms, BlobFormat.Kind.PartnerKeys, Plan.ParameterHash.Span);
            BlobFormat.WriteBlob(ms, sk);
            BlobFormat.WriteBlob(ms, ek);
            Debug.Assert(ms.Position == blob.Length);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sk);
        }
        return blob;
    }

    /// <summary>Reads a blob written by <see cref="Export"/>.</summary>
    /// <exception cref="HeFormatException">Malformed, truncated or made under other parameters.</exception>
    public static PartnerKeys Import(ReadOnlyMemory<byte> data, EvaluationPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return BlobFormat.Read(data, s =>
        {
            var r = new BlobReader(s, "partner keys");
            r.ReadHeader(BlobFormat.Kind.PartnerKeys, plan);
            var ctx = plan.Context;
            var skBytes = r.ReadBlob("secret key", 64 + 32 + (ctx.MaxLevel + 2) * ctx.N * 8);
            try
            {
                var ekBytes = r.ReadBlob("evaluation keys", EvaluationKeys.MaxBytes(ctx));
                r.ExpectEnd();
                var ek = EvaluationKeys.Read(ekBytes, plan);
                return new PartnerKeys(plan, CkksSerializer.LoadSecretKey(ctx, skBytes), ek);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(skBytes);
            }
        });
    }

    public void Dispose() => SecretKey.Dispose();
}
