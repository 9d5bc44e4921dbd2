using System.Security.Cryptography;
using System.Text;

namespace Serverless.Fraud.Scoring;

/// <summary>
/// Sends a fixed share of cards to the challenger model: a card's bucket is a hash of its token and the
/// experiment name, so a card stays with one version for the whole experiment (its alerts do not flip
/// between models), different experiments pick different cards, and no state is kept.
/// </summary>
public sealed class CanaryRouter
{
    private readonly ulong _salt;

    public CanaryRouter(double challengerFraction, string experiment)
    {
        if (!(challengerFraction >= 0 && challengerFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(challengerFraction), challengerFraction, "[0, 1]");
        ArgumentException.ThrowIfNullOrWhiteSpace(experiment);
        ChallengerFraction = challengerFraction;
        Experiment = experiment;
        _salt = BitConverter.ToUInt64(SHA256.HashData(Encoding.UTF8.GetBytes(experiment)), 0);
    }

    public double ChallengerFraction { get; }
    public string Experiment { get; }

    /// <summary>The card's position in [0, 1): the token is a PRF output, one mixing round with the salt suffices.</summary>
    public double Bucket(CardToken card) =>
        (StreamGenerator.Splitmix((ulong)card.Value ^ (ulong)(card.Value >> 64) ^ _salt) >> 11) * (1.0 / (1UL << 53));

    public bool ToChallenger(CardToken card) => Bucket(card) < ChallengerFraction;
}
