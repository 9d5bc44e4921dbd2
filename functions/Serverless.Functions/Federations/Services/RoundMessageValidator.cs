using Serverless.Federation.Compression;
using Serverless.Federation.Rounds;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Functions.Federations.Services;

/// <summary>
/// Intake checks of every round message, before it is stored. The JSON reader already refuses null
/// for a non-nullable member (<see cref="FederationHttp.Strict"/> respects nullable annotations); this
/// adds what annotations cannot say: no null array element, the sender's own id wherever a message
/// names it, peers and owners that are in the round, and sizes the round's parameters fix. A message
/// refused here is never stored, so it cannot fail the round later: its sender simply has not
/// answered the phase, and the phase's deadline drops it like any other silent client.
/// </summary>
internal static class RoundMessageValidator
{
    /// <summary>Largest public key or signature accepted (a P-256 SubjectPublicKeyInfo is 91 bytes, an ECDSA signature at most 72).</summary>
    private const int MaxKeyBytes = 1024;

    /// <summary>Largest encrypted share bundle (two Shamir shares plus AES-GCM nonce and tag are well under this).</summary>
    private const int MaxShareBytes = 4096;

    /// <summary>Largest complaint reason.</summary>
    private const int MaxReasonLength = 512;

    /// <summary>Null when <paramref name="message"/> may be stored; else why not (safe to show the sender: it names fields, never values).</summary>
    public static string? Validate(object message, RoundPlan plan, RoundStagePlan stage, int sender) => message switch
    {
        AdvertiseKeysMessage m => Advertise(m),
        ShareKeysMessage m => Shares(m, stage, sender),
        MaskedInputMessage m => Masked(m, stage),
        UnmaskResponse m => Unmask(m, stage),
        ConsistencySignature m => m.Signature is { Length: 64 } ? null : "signature must be 64 bytes (ECDSA P-256, r || s).",
        PlainUpdateUpload u => Plain(u, plan),
        _ => $"no intake rule for {message.GetType().Name}",
    };

    private static string? Advertise(AdvertiseKeysMessage m)
    {
        if (m.EncryptionPublicKey is not { Length: > 0 and <= MaxKeyBytes }) return "encryptionPublicKey must be 1.." + MaxKeyBytes + " bytes.";
        if (m.MaskingPublicKey is not { Length: > 0 and <= MaxKeyBytes }) return "maskingPublicKey must be 1.." + MaxKeyBytes + " bytes.";
        if (m.Signature is null || m.Signature.Length > MaxKeyBytes) return "signature must be present (empty when the round does not sign) and at most " + MaxKeyBytes + " bytes.";
        return null;
    }

    private static string? Shares(ShareKeysMessage m, RoundStagePlan stage, int sender)
    {
        if (m.Shares is null) return "shares is required.";
        if (m.SelfMaskCommitment is not { Length: > 0 and <= MaxKeyBytes }) return "selfMaskCommitment must be 1.." + MaxKeyBytes + " bytes.";
        var ids = stage.Parameters!.ClientIds;
        if (m.Shares.Length > ids.Length) return $"shares has {m.Shares.Length} entries; the round has {ids.Length} clients.";
        var seen = new HashSet<int>();
        for (var i = 0; i < m.Shares.Length; i++)
        {
            var s = m.Shares[i];
            if (s is null) return $"shares[{i}] is null.";
            if (s.From != sender) return $"shares[{i}].from must be your own id {sender}.";
            if (s.To == sender || Array.IndexOf(ids, s.To) < 0) return $"shares[{i}].to is not another client of this round.";
            if (!seen.Add(s.To)) return $"shares[{i}].to repeats a recipient.";
            if (s.Ciphertext is not { Length: > 0 and <= MaxShareBytes }) return $"shares[{i}].ciphertext must be 1..{MaxShareBytes} bytes.";
        }
        return null;
    }

    private static string? Masked(MaskedInputMessage m, RoundStagePlan stage)
    {
        var p = stage.Parameters!;
        var want = RingCodec.PackedLength(p.VectorLength, p.RingBits);
        if (m.MaskedInput is null || m.MaskedInput.Length != want) return $"maskedInput must be {want} bytes ({p.VectorLength} entries of {p.RingBits} bits).";
        if (m.Complaints is null) return "complaints is required (empty when there is none).";
        if (m.Complaints.Length > p.ClientIds.Length) return $"complaints has {m.Complaints.Length} entries; the round has {p.ClientIds.Length} clients.";
        for (var i = 0; i < m.Complaints.Length; i++)
        {
            var c = m.Complaints[i];
            if (c is null) return $"complaints[{i}] is null.";
            if (Array.IndexOf(p.ClientIds, c.Accused) < 0) return $"complaints[{i}].accused is not a client of this round.";
            if (c.Reason is null || c.Reason.Length > MaxReasonLength) return $"complaints[{i}].reason must be present and at most {MaxReasonLength} characters.";
            if (c.ShareKey is { Length: not ShareComplaint.ShareKeyLength }) return $"complaints[{i}].shareKey, the proof, must be {ShareComplaint.ShareKeyLength} bytes when present.";
        }
        return null;
    }

    private static string? Unmask(UnmaskResponse m, RoundStagePlan stage)
    {
        var ids = stage.Parameters!.ClientIds;
        if (m.Shares is null) return "shares is required.";
        if (m.Shares.Length > ids.Length) return $"shares has {m.Shares.Length} entries; the round has {ids.Length} clients.";
        for (var i = 0; i < m.Shares.Length; i++)
        {
            var s = m.Shares[i];
            if (s is null) return $"shares[{i}] is null.";
            if (Array.IndexOf(ids, s.Owner) < 0) return $"shares[{i}].owner is not a client of this round.";
            if (!Enum.IsDefined(s.Kind)) return $"shares[{i}].kind is not a known secret.";
            if (s.Share is not { Length: > 0 and <= MaxShareBytes }) return $"shares[{i}].share must be 1..{MaxShareBytes} bytes.";
        }
        return null;
    }

    private static string? Plain(PlainUpdateUpload u, RoundPlan plan)
    {
        if (u.Frame is null) return "frame is required.";
        if (u.NumExamples < 1) return "numExamples must be positive.";
        var parameters = plan.Encoding?.ParameterCount;
        try
        {
            // The header is checked against the model's size here, so a frame that would fail aggregation is refused at once.
            var frame = UpdateFrame.Decode(u.Frame, parameters ?? (1 << 28));
            if (parameters is { } n && frame.Length != n) return $"frame has {frame.Length} entries; the model has {n}.";
            if (frame.Kind == FrameKind.Ring) return "a plain upload cannot be a ring frame.";
        }
        catch (FrameFormatException e)
        {
            return "frame: " + e.Message;
        }
        return null;
    }
}
