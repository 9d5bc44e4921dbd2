namespace Serverless.Fraud.Data;

/// <summary>Card purchase, or an account-to-account transfer on the card's account.</summary>
public enum TransactionKind
{
    Purchase,
    Transfer,
}

/// <summary>Merchant category (a coarse stand-in for the ISO 18245 merchant category code).</summary>
public enum MerchantCategory
{
    Grocery,
    Fuel,
    Restaurant,
    Online,
    Travel,
    Electronics,
}

/// <summary>The labelled fraud patterns the generator injects (<see cref="None"/> for legitimate traffic).</summary>
public enum FraudPattern
{
    None,

    /// <summary>A burst of tiny online probes at unfamiliar merchants, then one or two large purchases.</summary>
    CardTesting,

    /// <summary>Someone else takes over the account: a new device in a new place, at ordinary amounts and pace.</summary>
    AccountTakeover,

    /// <summary>Incoming transfers from several sources, forwarded out within hours (money mules).</summary>
    MuleRing,

    /// <summary>Cards of a ring buy repeatedly at a colluding merchant with round amounts.</summary>
    MerchantCollusion,

    /// <summary>A stolen (cloned) card used many times within an hour near its home.</summary>
    VelocityAbuse,
}

/// <summary>
/// One card or transfer event. <see cref="CardNumber"/> is the raw primary account number (PAN): the
/// scoring library tokenizes it on entry and never stores, logs or prints it; <see cref="ToString"/>
/// leaves it out for the same reason.
/// </summary>
public sealed record Transaction : TransactionDetails
{
    /// <summary>The bank's id of this transaction (unique per bank; the scorer de-duplicates on it). Never a card number.</summary>
    public required string TransactionId { get; init; }

    public required string CardNumber { get; init; }
    public required int Bank { get; init; }

    /// <summary>Ground truth (generated or imported data only).</summary>
    public bool IsFraud { get; init; }

    public FraudPattern Pattern { get; init; }

    /// <summary>Everything but the card number.</summary>
    public override string ToString() =>
        $"Transaction {{ TransactionId = {TransactionId}, Bank = {Bank}, TimestampMs = {TimestampMs}, Amount = {Amount}, Kind = {Kind}, Category = {Category}, IsFraud = {IsFraud}, Pattern = {Pattern} }}";
}
