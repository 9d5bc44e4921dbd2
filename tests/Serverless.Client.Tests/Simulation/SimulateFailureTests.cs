using Serverless.Client.Simulation;
using Serverless.Federation.Rounds;

namespace Serverless.Client.Tests.Simulation;

public sealed class SimulateFailureTests
{
    private static ObservedRound Round(string federation, int n, RoundPhase phase, string? reason = null) =>
        new(federation, n, new RoundStatus(federation, n, $"round-{federation}-{n}", phase, RoundStages.Training, null, [], [], [], [], new Dictionary<string, double>(),
            0, 0, null, null, false, reason), TimeSpan.FromSeconds(1), [], false);

    private static SimulationReport Report(bool timingOnly, params ObservedRound[] rounds) =>
        new(new SimulationOptions { TimingOnly = timingOnly }, "sim", "sim-plain", 0.7, 0.7, 0.6, 0.6, "v1", 0, 0, rounds.Length, 3684, 1000, 1000, 1, 1, 0, 0, 0, 0, 0, 0, rounds);

    [Fact]
    public void A_failed_round_of_the_main_run_is_a_one_line_failure()
    {
        var failure = SimulateCommand.MainRunFailure(Report(false,
            Round("sim", 1, RoundPhase.Completed), Round("sim", 2, RoundPhase.Failed, "training/Unmasking: refusing to unmask:\nclient 1's secret has 0 shares"),
            Round("sim-plain", 1, RoundPhase.Completed)));
        Assert.NotNull(failure);
        Assert.DoesNotContain('\n', failure);
        Assert.Contains("1 of 2 rounds of 'sim'", failure);
        Assert.Contains("round 2 failed", failure);
        Assert.Contains("0 shares", failure);
    }

    [Fact]
    public void Only_the_main_run_decides_the_exit_code()
    {
        Assert.Null(SimulateCommand.MainRunFailure(Report(false, Round("sim", 1, RoundPhase.Completed), Round("sim-secagg", 1, RoundPhase.Failed, "x"))));
        Assert.NotNull(SimulateCommand.MainRunFailure(Report(true, Round("sim", 1, RoundPhase.Completed), Round("sim-secagg", 1, RoundPhase.Refused, "budget"))));
    }
}
