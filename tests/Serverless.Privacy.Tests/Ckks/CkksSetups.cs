using System.Numerics;
using Serverless.Privacy.Ckks;

namespace Serverless.Privacy.Tests.Ckks;

/// <summary>One context and key set per parameter set, built once and shared by every test (thread-safe, lazy).</summary>
public sealed class CkksSetup
{
    public CkksSetup(CkksParameters parameters, bool relin, Func<KeyGenerator, GaloisKeys?>? galois)
    {
        Context = new CkksContext(parameters);
        var keygen = new KeyGenerator(Context);
        SecretKey = keygen.SecretKey;
        PublicKey = keygen.CreatePublicKey();
        RelinKey = relin ? keygen.CreateRelinearizationKey() : null;
        GaloisKeys = galois?.Invoke(keygen);
        Encoder = new Encoder(Context);
        Encryptor = new Encryptor(Context, PublicKey);
        SymmetricEncryptor = new Encryptor(Context, SecretKey);
        Decryptor = new Decryptor(Context, SecretKey);
        Evaluator = new Evaluator(Context, RelinKey, GaloisKeys);
    }

    public CkksContext Context { get; }
    public SecretKey SecretKey { get; }
    public PublicKey PublicKey { get; }
    public RelinearizationKey? RelinKey { get; }
    public GaloisKeys? GaloisKeys { get; }
    public Encoder Encoder { get; }
    public Encryptor Encryptor { get; }
    public Encryptor SymmetricEncryptor { get; }
    public Decryptor Decryptor { get; }
    public Evaluator Evaluator { get; }

    public Ciphertext Encrypt(double[] values) => Encryptor.Encrypt(Encoder.Encode(values));

    public double[] Decrypt(Ciphertext ct) => Encoder.DecodeReal(Decryptor.Decrypt(ct));

    public Complex[] DecryptComplex(Ciphertext ct)
    {
        var slots = new Complex[Context.Slots];
        Encoder.Decode(Decryptor.Decrypt(ct), slots);
        return slots;
    }

    /// <summary>Deterministic test vectors in [-1, 1].</summary>
    public double[] RandomVector(int seed, int count = -1)
    {
        var rng = new Random(seed);
        var v = new double[count < 0 ? Context.Slots : count];
        for (var i = 0; i < v.Length; i++) v[i] = rng.NextDouble() * 2 - 1;
        return v;
    }

    public static double MaxError(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual)
    {
        var max = 0.0;
        for (var i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        return max;
    }
}

public static class CkksSetups
{
    /// <summary>N=4096 default [39,31 | 39], Δ=2^31, depth 1; all power-of-two rotation keys and conjugation.</summary>
    public static readonly Lazy<CkksSetup> N4096 = new(() =>
        new CkksSetup(CkksParameters.Default(4096), relin: true, kg => kg.CreateGaloisKeys()));

    /// <summary>N=8192 default [60,40,40 | 60], Δ=2^40, depth 2; all power-of-two rotation keys.</summary>
    public static readonly Lazy<CkksSetup> N8192 = new(() =>
        new CkksSetup(CkksParameters.Default(8192), relin: true, kg => kg.CreateGaloisKeys()));

    /// <summary>N=8192 [40,34,34,34,34 | 40] (216 bits), Δ=2^34, depth 4: polynomials and deeper circuits.</summary>
    public static readonly Lazy<CkksSetup> N8192Deep = new(() =>
        new CkksSetup(CkksParameters.Create(8192, [40, 34, 34, 34, 34], 40, Math.Pow(2, 34)), relin: true, kg => kg.CreateGaloisKeys([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048])));

    /// <summary>N=16384 default [60,40×6 | 60], Δ=2^40; relinearization key and rotation by 1.</summary>
    public static readonly Lazy<CkksSetup> N16384 = new(() =>
        new CkksSetup(CkksParameters.Default(16384), relin: true, kg => kg.CreateGaloisKeys([1])));

    /// <summary>N=32768 default, no evaluation keys (a light round-trip test only).</summary>
    public static readonly Lazy<CkksSetup> N32768 = new(() =>
        new CkksSetup(CkksParameters.Default(32768), relin: false, null));

    public static CkksSetup ForN(int n) => n switch
    {
        4096 => N4096.Value,
        8192 => N8192.Value,
        16384 => N16384.Value,
        32768 => N32768.Value,
        _ => throw new ArgumentOutOfRangeException(nameof(n)),
    };
}
