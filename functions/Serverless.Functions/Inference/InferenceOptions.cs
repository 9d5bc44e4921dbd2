namespace Serverless.Functions.Inference;

/// <summary>
/// App settings <c>Inference__*</c> (e.g. <c>Inference__MaxBatchBytes</c>): limits of encrypted inference. Every limit is checked before
/// any ciphertext is parsed, so an oversized or malformed batch costs the server a header read only.
/// </summary>
public sealed class InferenceOptions
{
    /// <summary>Largest encrypted batch blob accepted (bytes), over HTTP and through the queue.</summary>
    public long MaxBatchBytes { get; set; } = 1L << 30;

    /// <summary>Largest evaluation-key bundle a partner may register (bytes).</summary>
    public long MaxKeyBundleBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>Largest published model document (bytes).</summary>
    public long MaxModelBytes { get; set; } = 16L * 1024 * 1024;

    /// <summary>
    /// Records one partner may have scored per UTC day (every record is one query about the model; the cap
    /// bounds model extraction, docs/inference.md "Residual leakage"). A batch over what is left is refused.
    /// </summary>
    public long MaxRecordsPerPartnerPerDay { get; set; } = 1_000_000;

    /// <summary>Accept CKKS parameter sets above the 128-bit security bound (small rings in tests only; never in production).</summary>
    public bool AllowInsecureParametersForTests { get; set; }

    /// <summary>What is wrong with the settings, each naming the setting (never its value), or nothing.</summary>
    internal IEnumerable<string> Problems()
    {
        if (MaxBatchBytes is < 1024 or > int.MaxValue) yield return "Inference__MaxBatchBytes must be between 1024 and 2147483647";
        if (MaxKeyBundleBytes is < 1024 or > int.MaxValue) yield return "Inference__MaxKeyBundleBytes must be between 1024 and 2147483647";
        if (MaxModelBytes is < 1024 or > 1024L * 1024 * 1024) yield return "Inference__MaxModelBytes must be between 1024 and 1073741824";
        if (MaxRecordsPerPartnerPerDay < 1) yield return "Inference__MaxRecordsPerPartnerPerDay must be at least 1";
    }
}
