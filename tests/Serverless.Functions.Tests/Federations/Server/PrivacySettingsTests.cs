using System.Net;
using System.Text.Json;
using Serverless.Federation.Rounds;
using Serverless.Privacy.DifferentialPrivacy;
using Serverless.Security.Audit;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// Privacy settings are append-only once privacy has been spent: UpdateFederation refuses (409,
/// audited as denied) switching privacy off, raising the budget or raising delta, and accepts
/// tightening, re-reading the spent epsilon at the new delta. The budget is charged before the
/// training sum is released, not at commit.
/// </summary>
[Collection(FederationServerCollection.Name)]
public sealed class PrivacySettingsTests(CompletedRoundFixture fixture)
{
    private FederationTestHost Host => fixture.Host;

    /// <summary>A federation with one DP round (q = 1, z = 1) already accounted at delta 1e-5.</summary>
    private async Task<(FederationConfig Config, double Epsilon)> SpentFederationAsync(string id)
    {
        var config = CompletedRoundFixture.NewConfig(id);
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, config);
        var budget = new PrivacyBudget(double.MaxValue, config.Privacy.Delta);
        budget.Spend(1.0, config.Privacy.NoiseMultiplier);
        await Host.Store.UpdateAsync(id, s => s with
        {
            Accountant = new AccountantState(budget.Orders.ToArray(), budget.RdpSpent.ToArray(), 1, budget.EpsilonSpent),
            AccountedRounds = [1], LastRound = 1, RoundsCompleted = 1,
        });
        return (config, budget.EpsilonSpent);
    }

    private async Task<(HttpStatusCode Status, string Body)> PutAsync(FederationConfig config)
    {
        using var response = await Host.Http.SendAsync(HttpMethod.Put, RoundRoutes.Federation(config.Id), fixture.OperatorToken, config);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Loosening_privacy_after_spending_is_refused_and_audited()
    {
        const string id = "privacy-loosen";
        var (config, epsilon) = await SpentFederationAsync(id);
        var attempts = new (string Field, FederationConfig Config)[]
        {
            ("privacy.enabled", config with { Privacy = config.Privacy with { Enabled = false } }),
            ("privacy.epsilonBudget", config with { Privacy = config.Privacy with { EpsilonBudget = config.Privacy.EpsilonBudget * 2 } }),
            ("privacy.delta", config with { Privacy = config.Privacy with { Delta = 0.9 } }),
        };
        foreach (var (field, attempt) in attempts)
        {
            var (status, body) = await PutAsync(attempt);
            Assert.True(status == HttpStatusCode.Conflict, $"{field}: {(int)status} {body}");
            using var problem = JsonDocument.Parse(body);
            Assert.True(problem.RootElement.GetProperty("errors").TryGetProperty(field, out _), body);
        }

        // Nothing changed: the settings and the spent epsilon (at delta 1e-5) are as before.
        var state = (await Host.Store.TryGetStateAsync(id))!;
        Assert.Equal(config.Privacy, state.Config.Privacy);
        Assert.Equal(epsilon, state.EpsilonSpent, 12);

        var denied = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync())
            if (e.Resource == $"federation/{id}" && e.Action == "federation.update" && e.Outcome == AuditOutcome.Denied) denied.Add(e);
        Assert.Equal(3, denied.Count);
        Assert.Contains(denied, e => e.Detail!.Contains("privacy.delta", StringComparison.Ordinal));
        Assert.Contains(denied, e => e.Detail!.Contains("privacy.enabled", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tightening_privacy_after_spending_is_accepted_and_reports_epsilon_at_the_new_delta()
    {
        const string id = "privacy-tighten";
        var (config, epsilon) = await SpentFederationAsync(id);
        var tighter = config with { Privacy = config.Privacy with { Delta = 1e-7, EpsilonBudget = config.Privacy.EpsilonBudget - 1 } };
        var (status, body) = await PutAsync(tighter);
        Assert.True(status == HttpStatusCode.OK, $"{(int)status} {body}");
        var state = (await Host.Store.TryGetStateAsync(id))!;
        Assert.Equal(tighter.Privacy, state.Config.Privacy);
        var atNewDelta = new PrivacyBudget(double.MaxValue, 1e-7, state.Accountant!.Orders, state.Accountant.RdpSpent).EpsilonSpent;
        Assert.Equal(atNewDelta, state.EpsilonSpent, 12);
        Assert.True(state.EpsilonSpent > epsilon, $"a smaller delta reports a larger epsilon: {state.EpsilonSpent} vs {epsilon}");
    }

    [Fact]
    public async Task Before_anything_is_spent_privacy_settings_may_change_freely()
    {
        const string id = "privacy-fresh";
        var config = CompletedRoundFixture.NewConfig(id);
        await Host.Http.CreateFederationAsync(fixture.OperatorToken, config);
        var (status, body) = await PutAsync(config with { Privacy = config.Privacy with { Delta = 1e-3, EpsilonBudget = 50 } });
        Assert.True(status == HttpStatusCode.OK, $"{(int)status} {body}");
    }

    [Fact]
    public async Task The_round_is_charged_before_its_training_sum_is_released()
    {
        var entries = new List<AuditEntry>();
        await foreach (var e in Host.Audit.ReadAsync())
            if (e.Resource.StartsWith($"federation/{CompletedRoundFixture.Federation}/round/1", StringComparison.Ordinal)) entries.Add(e);
        // Two releases, two charges (decision 0023): the statistics sum, then the training sum, each charged before it is stored.
        var charges = entries.Select((e, i) => (e, i)).Where(x => x.e.Action == "privacy.charge").Select(x => x.i).ToArray();
        Assert.Equal(2, charges.Length);
        var statistics = entries.FindIndex(e => e.Action == "round.phase" && e.Detail!.StartsWith("statistics/Unmasking closed", StringComparison.Ordinal));
        var release = entries.FindIndex(e => e.Action == "round.phase" && e.Detail!.StartsWith("training/Unmasking closed", StringComparison.Ordinal));
        Assert.StartsWith("round 1 statistics", entries[charges[0]].Detail);
        Assert.True(charges[0] < statistics && statistics < charges[1] && charges[1] < release,
            $"charged at entries {charges[0]} and {charges[1]}, the sums released at entries {statistics} and {release}");
        Assert.Equal(fixture.Status.EpsilonSpent, (await Host.Store.TryGetStateAsync(CompletedRoundFixture.Federation))!.EpsilonSpent, 9);
    }
}
