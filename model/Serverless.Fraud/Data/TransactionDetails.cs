namespace Serverless.Fraud.Data;

/// <summary>
/// What every form of a transaction carries: the raw <see cref="Transaction"/> at the gateway, the tokenized
/// <see cref="CardEvent"/> after intake, and the app's submission as a bank posts it. Identity (the
/// transaction id and the card, raw or tokenized) is each form's own, so this holds no secret.
/// </summary>
public abstract record TransactionDetails
{
    /// <summary>Milliseconds since the Unix epoch (UTC).</summary>
    public long TimestampMs { get; init; }

    /// <summary>In the card's currency, two decimals, positive.</summary>
    public double Amount { get; init; }

    /// <summary>The merchant, or for a transfer the counterparty account (opaque, not secret).</summary>
    public int MerchantId { get; init; }

    public MerchantCategory Category { get; init; }
    public bool Online { get; init; }
    public TransactionKind Kind { get; init; }

    /// <summary>+1 money out, -1 money in (transfers); 0 for purchases.</summary>
    public int Direction { get; init; }

    /// <summary>Where the event happened (card-present terminal or IP geolocation), in region units [-1, 1]².</summary>
    public float LocationX { get; init; }

    public float LocationY { get; init; }
    public int DeviceId { get; init; }

    /// <summary>The bank's time zone offset in hours; local hour of day = UTC hour + this.</summary>
    public int UtcOffsetHours { get; init; }

    /// <summary>Static card profile: days since the card was issued.</summary>
    public float CardAgeDays { get; init; }

    /// <summary>Static card profile: credit (true) or debit card.</summary>
    public bool IsCredit { get; init; }
}
