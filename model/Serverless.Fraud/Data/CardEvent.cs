namespace Serverless.Fraud.Data;

/// <summary>
/// A transaction after intake: the card number replaced by its <see cref="CardToken"/>. This is what goes
/// on a queue, into a store or through the scorer; the raw <see cref="Transaction"/> exists only at the
/// gateway that tokenizes it (<see cref="CardTokenizer.Tokenize(Transaction)"/>).
/// </summary>
public sealed record CardEvent
{
    /// <summary>The bank's transaction id: the scorer scores an id once (a redelivered message is skipped).</summary>
    public required string TransactionId { get; init; }

    public required CardToken Card { get; init; }
    public required int Bank { get; init; }

    /// <summary>Milliseconds since the Unix epoch (UTC).</summary>
    public required long TimestampMs { get; init; }

    public required double Amount { get; init; }
    public required int MerchantId { get; init; }
    public MerchantCategory Category { get; init; }
    public bool Online { get; init; }
    public TransactionKind Kind { get; init; }
    public int Direction { get; init; }
    public float LocationX { get; init; }
    public float LocationY { get; init; }
    public int DeviceId { get; init; }
    public int UtcOffsetHours { get; init; }
    public float CardAgeDays { get; init; }
    public bool IsCredit { get; init; }

    /// <summary>The transaction's fields with <paramref name="card"/> in place of its number (labels are not carried: serving never sees them).</summary>
    public static CardEvent From(Transaction t, CardToken card)
    {
        ArgumentNullException.ThrowIfNull(t);
        return new CardEvent
        {
            TransactionId = t.TransactionId,
            Card = card,
            Bank = t.Bank,
            TimestampMs = t.TimestampMs,
            Amount = t.Amount,
            MerchantId = t.MerchantId,
            Category = t.Category,
            Online = t.Online,
            Kind = t.Kind,
            Direction = t.Direction,
            LocationX = t.LocationX,
            LocationY = t.LocationY,
            DeviceId = t.DeviceId,
            UtcOffsetHours = t.UtcOffsetHours,
            CardAgeDays = t.CardAgeDays,
            IsCredit = t.IsCredit,
        };
    }
}
