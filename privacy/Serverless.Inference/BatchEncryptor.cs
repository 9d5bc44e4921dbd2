using Serverless.Model.Data;

namespace Serverless.Inference;

/// <summary>
/// Partner side: packs preprocessed records one per slot and encrypts them. With the partner's
/// <see cref="PartnerKeys"/> the ciphertexts are symmetric encryptions whose uniform half travels
/// as a 32-byte seed (half the upload); with only <see cref="EvaluationKeys"/> they are public-key
/// encryptions. Either way the server can evaluate them with the registered evaluation keys.
/// </summary>
public static class BatchEncryptor
{
    /// <summary>Encrypts <paramref name="records"/> (built with the plan's steps and features) under the partner's secret key.</summary>
    public static EncryptedBatch Encrypt(SequenceDataset records, PartnerKeys keys)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(keys);
        return Encrypt(records.Values, records.Mask, records.Count, keys.Plan, keys.EvaluationKeys, keys.SecretKey);
    }

    /// <summary>Encrypts <paramref name="records"/> under the public key of <paramref name="keys"/>.</summary>
    public static EncryptedBatch Encrypt(SequenceDataset records, EvaluationKeys keys)
    {
        ArgumentNullException.ThrowIfNull(records);
        ArgumentNullException.ThrowIfNull(keys);
        return Encrypt(records.Values, records.Mask, records.Count, keys.Plan, keys, null);
    }

    /// <summary>
    /// Encrypts <paramref name="count"/> records given as values [count, Steps, Features] and mask
    /// [count, Steps] (1 for a real visit, 0 for padding after the last real one; every record has at least one real visit).
    /// </summary>
    /// <exception cref="ArgumentException">Sizes do not match the plan, more records than the plan allows, or non-finite values.</exception>
    public static EncryptedBatch Encrypt(ReadOnlySpan<float> values, ReadOnlySpan<float> mask, int count, PartnerKeys keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        return Encrypt(values, mask, count, keys.Plan, keys.EvaluationKeys, keys.SecretKey);
    }

    private static EncryptedBatch Encrypt(ReadOnlySpan<float> values, ReadOnlySpan<float> mask, int count, EvaluationPlan plan, EvaluationKeys keys, SecretKey? secretKey)
    {
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "a batch needs at least one record");
        if (count > plan.MaxRecords) throw new ArgumentException($"{count} records exceed the plan's limit of {plan.MaxRecords} per batch; split them", nameof(count));
        var steps = plan.Steps;
        var features = plan.Features;
        if (values.Length != (long)count * steps * features)
            throw new ArgumentException($"values has {values.Length} entries, expected {count} records × {steps} steps × {features} features", nameof(values));
        if (mask.Length != count * steps)
            throw new ArgumentException($"mask has {mask.Length} entries, expected {count} × {steps}", nameof(mask));
        foreach (var v in values)
            if (!float.IsFinite(v)) throw new ArgumentException("values contain NaN or infinity (preprocess first)", nameof(values));
        for (var r = 0; r < count; r++)
        {
            // Input convention of SequenceDataset: real visits first, then padding; the circuit needs at least one.
            var row = mask.Slice(r * steps, steps);
            if (row[0] != 1f) throw new ArgumentException($"record {r} has no real visit (mask[{r}, 0] must be 1)", nameof(mask));
            for (var t = 0; t < steps; t++)
            {
                if (row[t] is not (0f or 1f)) throw new ArgumentException($"mask[{r}, {t}] is {row[t]}, expected 0 or 1", nameof(mask));
                if (t > 0 && row[t] > row[t - 1]) throw new ArgumentException($"record {r} has a real visit after padding (real visits come first)", nameof(mask));
            }
        }

        var ctx = plan.Context;
        var slots = plan.SlotsPerCiphertext;
        var groupCount = (count + slots - 1) / slots;
        var perGroup = plan.CiphertextsPerGroup;
        // Slot-major copies so each ciphertext's slots are contiguous: [group][input][slot].
        var packed = new double[groupCount * perGroup][];
        for (var j = 0; j < packed.Length; j++) packed[j] = new double[slots];
        for (var r = 0; r < count; r++)
        {
            var g = r / slots;
            var s = r % slots;
            // Real visits move to the end of the window (left padding): the state stays zero through the
            // padding, so the circuit masks only the input gate and reads the output gate at the last step.
            // The plaintext model gives the same result either way (padding values are zero in both).
            var real = 0;
            while (real < steps && mask[r * steps + real] == 1f) real++;
            var shift = steps - real;
            for (var t = 0; t < real; t++)
                for (var f = 0; f < features; f++)
                    packed[g * perGroup + (t + shift) * features + f][s] = values[(r * steps + t) * features + f];
            for (var t = shift; t < steps; t++) packed[g * perGroup + steps * features + t][s] = 1.0;
        }
        var cts = new Ciphertext[packed.Length];
        var level = ctx.MaxLevel;
        var scale = ctx.ScaleAt(level);
        Parallel.For(0, cts.Length, () => (new Encoder(ctx), secretKey is null ? new Encryptor(ctx, keys.PublicKey) : new Encryptor(ctx, secretKey), new Plaintext(ctx)),
            (j, _, local) =>
            {
                var (encoder, encryptor, pt) = local;
                encoder.Encode(packed[j], scale, level, pt);
                cts[j] = encryptor.Encrypt(pt);
                return local;
            },
            _ => { });
        var keyId = keys.KeyId.ToArray();
        var groups = new CiphertextGroup[groupCount];
        for (var g = 0; g < groupCount; g++)
            groups[g] = new CiphertextGroup(plan, g, Math.Min(slots, count - g * slots), keyId, cts[(g * perGroup)..((g + 1) * perGroup)]);
        return new EncryptedBatch(plan, count, keyId, groups);
    }
}

/// <summary>Partner side: decrypts a result blob into per-record probabilities.</summary>
public static class ScoreDecryptor
{
    /// <summary>Probabilities P(outcome) per record, in submission order: the sigmoid of each decrypted logit.</summary>
    /// <exception cref="Serverless.Privacy.Serialization.HeFormatException">Malformed result, other parameters, or a result for other keys.</exception>
    public static float[] Decrypt(ReadOnlyMemory<byte> resultBlob, PartnerKeys keys)
    {
        var logits = DecryptLogits(resultBlob, keys);
        var p = new float[logits.Length];
        for (var i = 0; i < p.Length; i++) p[i] = (float)(1 / (1 + Math.Exp(-logits[i])));
        return p;
    }

    /// <summary>The decrypted logits per record.</summary>
    public static double[] DecryptLogits(ReadOnlyMemory<byte> resultBlob, PartnerKeys keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var result = EncryptedResult.Read(resultBlob, keys.Plan);
        keys.EvaluationKeys.CheckKeyId(result.KeyId.Span, "encrypted result");
        return DecryptLogits(result, keys);
    }

    internal static double[] DecryptLogits(EncryptedResult result, PartnerKeys keys)
    {
        var ctx = keys.Plan.Context;
        var decryptor = new Decryptor(ctx, keys.SecretKey);
        var encoder = new Encoder(ctx);
        var logits = new double[result.RecordCount];
        var slots = keys.Plan.SlotsPerCiphertext;
        foreach (var g in result.Groups)
        {
            var decoded = encoder.DecodeReal(decryptor.Decrypt(g.Logits));
            decoded.AsSpan(0, g.RecordCount).CopyTo(logits.AsSpan(g.Index * slots));
        }
        return logits;
    }
}
