using System.Diagnostics.CodeAnalysis;

namespace Serverless.Fraud.Data;

/// <summary>
/// A transaction after intake: the card number replaced by its <see cref="CardToken"/>. This is what goes
/// on a queue, into a store or through the scorer; the raw <see cref="Transaction"/> exists only at the
/// gateway that tokenizes it (<see cref="CardTokenizer.Tokenize(Transaction)"/>).
/// </summary>
public sealed record CardEvent : TransactionDetails
{
    public CardEvent()
    {
    }

    /// <summary>An event with <paramref name="details"/>' fields (labels, if any, are not carried: serving never sees them).</summary>
    [SetsRequiredMembers]
    public CardEvent(TransactionDetails details, string transactionId, CardToken card, int bank) : base(details)
    {
        TransactionId = transactionId;
        Card = card;
        Bank = bank;
    }

    /// <summary>The bank's transaction id: the scorer scores an id once (a redelivered message is skipped).</summary>
    public required string TransactionId { get; init; }

    public required CardToken Card { get; init; }
    public required int Bank { get; init; }

    /// <summary>The transaction's fields with <paramref name="card"/> in place of its number.</summary>
    public static CardEvent From(Transaction t, CardToken card)
    {
        ArgumentNullException.ThrowIfNull(t);
        return new CardEvent(t, t.TransactionId, card, t.Bank);
    }
}
