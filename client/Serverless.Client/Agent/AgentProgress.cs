using Spectre.Console;

namespace Serverless.Client.Agent;

/// <summary>Where the agent reports what it is doing: progress bars on an interactive terminal, plain lines otherwise.</summary>
internal interface IAgentProgress
{
    /// <summary>A step of a round: <paramref name="done"/> of <paramref name="total"/> steps, with a short description.</summary>
    void Step(string federation, int round, string description, int done, int total);

    /// <summary>A line worth keeping (round finished, dropped, errors).</summary>
    void Note(string message);
}

/// <summary>Plain lines on stdout (redirected output, logs, tests): one line per step.</summary>
internal sealed class LineProgress(TextWriter output) : IAgentProgress
{
    private readonly Lock _gate = new();

    public void Step(string federation, int round, string description, int done, int total)
    {
        lock (_gate) output.WriteLine($"[{federation} round {round}] {description} ({done}/{total})");
    }

    public void Note(string message)
    {
        lock (_gate) output.WriteLine(message);
    }
}

/// <summary>Spectre.Console progress bars, one per federation round (only when the terminal is interactive).</summary>
internal sealed class SpectreProgress(ProgressContext context) : IAgentProgress
{
    private readonly Dictionary<(string, int), ProgressTask> _tasks = [];
    private readonly Lock _gate = new();

    /// <summary>True when stdout is a terminal that can redraw progress bars.</summary>
    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="body"/> with progress bars when interactive, else with <see cref="LineProgress"/>.</summary>
    public static async Task<T> RunAsync<T>(Func<IAgentProgress, Task<T>> body)
    {
        if (!Interactive) return await body(new LineProgress(Console.Out));
        T result = default!;
        await AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx => result = await body(new SpectreProgress(ctx)));
        return result;
    }

    public void Step(string federation, int round, string description, int done, int total)
    {
        lock (_gate)
        {
            if (!_tasks.TryGetValue((federation, round), out var task))
                _tasks[(federation, round)] = task = context.AddTask(Markup.Escape($"{federation} round {round}"), maxValue: total);
            task.MaxValue = total;
            task.Value = done;
            task.Description = Markup.Escape($"{federation} round {round}: {description}");
            context.Refresh();
        }
    }

    public void Note(string message)
    {
        lock (_gate) AnsiConsole.MarkupLine(Markup.Escape(message));
    }
}
