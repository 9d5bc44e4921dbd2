namespace Serverless.Fraud.Features;

/// <summary>
/// The model's input per time step: <see cref="EventCount"/> features of the event itself, then
/// <see cref="StaticCount"/> static card features (repeated at every step, as the EHR model repeats a
/// patient's static columns). Transforms are fixed (no fitted statistics), chosen so that legitimate
/// traffic lands roughly in [-2, 2], so train and serve can never disagree on a scaler.
/// </summary>
public static class EventFeatures
{
    public const int EventCount = 19;
    public const int StaticCount = 2;
    public const int Count = EventCount + StaticCount;

    /// <summary>Gap used for a card's first event (no history): 30 days.</summary>
    public const double NoHistoryGapSeconds = 30 * 86_400;

    public static IReadOnlyList<string> Names { get; } =
    [
        "log_amount", "log_gap", "hour_sin", "hour_cos", "location_x", "location_y", "device_a", "device_b",
        "merchant_a", "merchant_b", "cat_grocery", "cat_fuel", "cat_restaurant", "cat_online", "cat_travel", "cat_electronics",
        "online", "transfer_direction", "round_amount", "card_age", "credit",
    ];

    /// <summary>Writes the event part of <paramref name="t"/>; <paramref name="previousTimestampMs"/> is the card's previous event, if any.</summary>
    public static void EncodeEvent(CardEvent t, long? previousTimestampMs, Span<float> destination)
    {
        if (destination.Length < EventCount) throw new ArgumentException($"destination needs {EventCount} entries", nameof(destination));
        var gap = previousTimestampMs is { } p ? Math.Max(0, (t.TimestampMs - p) / 1000.0) : NoHistoryGapSeconds;
        var localHour = ((t.TimestampMs / 3_600_000.0 + t.UtcOffsetHours) % 24 + 24) % 24;
        var angle = localHour / 24 * 2 * Math.PI;
        destination[0] = (float)((Math.Log(1 + t.Amount) - 3.5) / 1.5);
        destination[1] = (float)((Math.Log(1 + gap) - 9) / 3);
        destination[2] = (float)Math.Sin(angle);
        destination[3] = (float)Math.Cos(angle);
        destination[4] = t.LocationX;
        destination[5] = t.LocationY;
        HashPair(t.DeviceId, 0x5bd1e995, destination.Slice(6, 2));
        HashPair(t.MerchantId, 0x27d4eb2f, destination.Slice(8, 2));
        destination.Slice(10, 6).Clear();
        destination[10 + (int)t.Category] = 1;
        destination[16] = t.Online ? 1 : 0;
        destination[17] = t.Direction;
        destination[18] = t.Amount >= 10 && t.Amount % 10 == 0 ? 1 : 0;
    }

    public static void EncodeStatic(CardEvent t, Span<float> destination)
    {
        if (destination.Length < StaticCount) throw new ArgumentException($"destination needs {StaticCount} entries", nameof(destination));
        destination[0] = (float)((Math.Log(1 + Math.Max(0, t.CardAgeDays)) - 4.5) / 1.2);
        destination[1] = t.IsCredit ? 1 : 0;
    }

    /// <summary>
    /// An identifier as two pseudo-random coordinates in [-1, 1] (0, 0 for "none"): an embedding that needs
    /// no vocabulary, so equal ids compare equal across steps and unseen ids cost nothing.
    /// </summary>
    private static void HashPair(int id, uint salt, Span<float> destination)
    {
        if (id == 0) { destination[0] = 0; destination[1] = 0; return; }
        var h = Data.StreamGenerator.Splitmix((ulong)(uint)id * salt + salt);
        destination[0] = (float)((uint)h / 2147483648.0 - 1);
        destination[1] = (float)((uint)(h >> 32) / 2147483648.0 - 1);
    }
}
