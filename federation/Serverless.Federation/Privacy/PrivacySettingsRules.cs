using System.Globalization;
using Serverless.Federation.Rounds;

namespace Serverless.Federation.Privacy;

/// <summary>
/// Privacy settings are append-only once privacy has been spent: an operator may tighten them but
/// never loosen them. Loosening after the fact would rewrite the guarantee already given for released
/// models: switching privacy off stops the accountant, a larger budget admits rounds the original
/// budget refused, and a larger delta re-reads the spent RDP curve at a weaker (epsilon, delta) point
/// (1e-5 to 0.9 drops the reported epsilon from 19 to 3 for the same noise).
/// </summary>
public static class PrivacySettingsRules
{
    /// <summary>True once a change of the privacy settings can rewrite a guarantee already given: something is accounted, or a round has run with privacy on.</summary>
    public static bool IsLocked(FederationState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return state.Accountant is not null || state.AccountedRounds.Length > 0 || (state.LastRound > 0 && state.Config.Privacy.Enabled);
    }

    /// <summary>Every loosening of <paramref name="next"/> against the federation's current settings, as (field, message); empty when the change is allowed.</summary>
    public static IReadOnlyList<(string Field, string Message)> Loosenings(FederationState state, FederationPrivacy next)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(next);
        var errors = new List<(string, string)>();
        if (!IsLocked(state)) return errors;
        var current = state.Config.Privacy;
        if (current.Enabled && !next.Enabled)
            errors.Add(("privacy.enabled", "privacy cannot be switched off once privacy has been spent"));
        if (next.EpsilonBudget > current.EpsilonBudget)
            errors.Add(("privacy.epsilonBudget", string.Create(CultureInfo.InvariantCulture, $"may only be lowered once privacy has been spent (it is {current.EpsilonBudget:G6})")));
        if (next.Delta > current.Delta)
            errors.Add(("privacy.delta", string.Create(CultureInfo.InvariantCulture, $"may only be lowered once privacy has been spent (it is {current.Delta:G6}): a larger delta would report a smaller epsilon for the same noise")));
        if (next.StatisticsNoiseMultiplier < current.StatisticsNoiseMultiplier)
            errors.Add(("privacy.statisticsNoiseMultiplier", string.Create(CultureInfo.InvariantCulture, $"may only be raised once privacy has been spent (it is {current.StatisticsNoiseMultiplier:G6})")));
        return errors;
    }

    /// <summary>
    /// The state with tightened settings applied: the spent epsilon is re-read at the new delta (a
    /// smaller delta reports a larger epsilon for the same RDP curve), so the budget check and the
    /// view never report a guarantee at a delta the operator no longer accepts.
    /// </summary>
    /// <exception cref="InvalidOperationException">the change loosens the settings (check <see cref="Loosenings"/> first).</exception>
    public static FederationState Apply(FederationState state, FederationConfig next)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(next);
        if (Loosenings(state, next.Privacy).Count > 0) throw new InvalidOperationException("The privacy settings may only be tightened.");
        var updated = state with { Config = next };
        if (state.Accountant is { } a && next.Privacy.Delta != state.Config.Privacy.Delta)
        {
            var budget = new PrivacyBudget(double.MaxValue, next.Privacy.Delta, a.Orders, a.RdpSpent);
            updated = updated with { Accountant = a with { EpsilonSpent = budget.EpsilonSpent } };
        }
        return updated;
    }
}
