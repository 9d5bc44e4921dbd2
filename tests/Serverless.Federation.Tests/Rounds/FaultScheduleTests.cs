using Serverless.Federation.Rounds;

namespace Serverless.Federation.Tests.Rounds;

/// <summary>
/// Property test over seeded fault schedules (FaultScheduleModel): drops at every phase before or after sending, duplicate
/// and late messages, a client sending a corrupt share, and phases during which the host is slow.
/// </summary>
public sealed class FaultScheduleTests
{
    private const int Schedules = 200;

    [Fact]
    public void Every_round_with_t_survivors_completes_with_their_exact_sum_and_every_other_ends_with_a_reason()
    {
        var failures = new List<string>();
        var completed = 0;
        for (var seed = 1; seed <= Schedules; seed++)
        {
            var outcome = FaultScheduleModel.Check(FaultSchedule.Generate(seed), RoundRules.Product);
            if (outcome.Problem is { } problem) failures.Add($"seed {seed}: {problem}");
            if (outcome.Completed) completed++;
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {Schedules} fault schedules failed:\n" + string.Join("\n", failures));
        // The schedules exercise both outcomes (a generator that never lets a round fail would prove little).
        Assert.InRange(completed, Schedules / 2, Schedules - 5);
    }

    [Fact]
    public void With_the_malicious_server_variant_rounds_with_t_survivors_still_complete_exactly_through_the_consistency_check()
    {
        // Same faults and slow hosts, with signed keys, the ConsistencyCheck phase and t at or above the floor (issue 20).
        const int schedules = 60;
        var failures = new List<string>();
        var completed = 0;
        for (var seed = 1; seed <= schedules; seed++)
        {
            var outcome = FaultScheduleModel.Check(FaultSchedule.Generate(seed, malicious: true), RoundRules.Product);
            if (outcome.Problem is { } problem) failures.Add($"seed {seed}: {problem}");
            if (outcome.Completed) completed++;
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {schedules} fault schedules failed:\n" + string.Join("\n", failures));
        Assert.InRange(completed, 5, schedules - 5);
    }

    [Fact]
    public void A_schedule_gives_the_same_outcome_every_time()
    {
        foreach (var seed in new[] { 3, 17, 42, 101 })
        {
            var first = FaultScheduleModel.Check(FaultSchedule.Generate(seed), RoundRules.Product);
            var second = FaultScheduleModel.Check(FaultSchedule.Generate(seed), RoundRules.Product);
            Assert.Equal(first.Summary, second.Summary);
            Assert.Equal(FaultSchedule.Generate(seed).ToString(), FaultSchedule.Generate(seed).ToString());
        }
    }

    [Fact]
    public void Before_the_fix_a_slow_host_made_live_survivors_dropouts_and_unmasking_starved()
    {
        // The Unmasking failure of the simulate runs: the survivors' answers reached the server before the deadline, but the
        // orchestration processed them after its deadline timer (queued when the phase opened, so first in the batch) and
        // closed with none of them. With today's rules the same schedule completes.
        var schedule = FaultScheduleModel.SlowUnmasking();
        var before = FaultScheduleModel.Check(schedule, RoundRules.BeforeFix);
        Assert.False(before.Completed);
        Assert.Contains("secret has 0 shares", before.Reason);
        var after = FaultScheduleModel.Check(schedule, RoundRules.Product);
        Assert.Null(after.Problem);
        Assert.True(after.Completed);
    }

    [Fact]
    public void A_deadline_observed_late_is_extended_by_the_host_lateness_a_bounded_number_of_times()
    {
        var open = new DateTime(2026, 12, 1, 0, 0, 0, DateTimeKind.Utc);
        var c = new PhaseCollector([1, 2, 3], open, TimeSpan.FromSeconds(10), PhaseDeadlinePolicy.Default);
        Assert.False(c.DeadlineObserved(open.AddSeconds(5)));                 // not yet due
        Assert.True(new PhaseCollector([1], open, TimeSpan.FromSeconds(10), PhaseDeadlinePolicy.Default).DeadlineObserved(open.AddSeconds(11)));   // 1 s late: normal
        Assert.False(c.DeadlineObserved(open.AddSeconds(16)));                // 6 s late: the host was away; 6 s more
        Assert.Equal(open.AddSeconds(22), c.Deadline);
        Assert.False(c.DeadlineObserved(open.AddSeconds(60)));                // 38 s late: at most one phase length more
        Assert.Equal(open.AddSeconds(70), c.Deadline);
        Assert.False(c.DeadlineObserved(open.AddSeconds(80)));
        Assert.True(c.DeadlineObserved(open.AddSeconds(200)));                // the third extension was the last
        Assert.Equal(3, c.Extensions);
        Assert.True(c.Arrived(2));
        Assert.False(c.Arrived(2));
        Assert.False(c.Arrived(9));
        Assert.Equal([2], c.Got);
        Assert.True(new PhaseCollector([1], open, TimeSpan.FromSeconds(10), PhaseDeadlinePolicy.Strict).DeadlineObserved(open.AddSeconds(300)));
    }

    [Fact]
    public void A_close_counts_every_message_stored_before_it()
    {
        Assert.Equal([1, 2, 4], RoundCoordinator.ArrivalsAtClose([4, 1, 2, 3], [2], id => id is 1 or 4 or 7));
    }
}
