using Spectre.Console;

namespace Serverless.Client.Partner;

/// <summary>
/// Progress of the partner's phases (import, encrypt, upload, evaluate, decrypt): Spectre.Console
/// progress bars on an interactive terminal, one plain line per finished phase otherwise (logs, tests).
/// </summary>
internal sealed class PartnerProgress
{
    private readonly ProgressContext? _context;
    private readonly Dictionary<string, (ProgressTask? Task, Stopwatch Clock)> _phases = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    private PartnerProgress(ProgressContext? context) => _context = context;

    public static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    public static async Task<T> RunAsync<T>(Func<PartnerProgress, Task<T>> body)
    {
        if (!Interactive) return await body(new PartnerProgress(null));
        T result = default!;
        await AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async ctx => result = await body(new PartnerProgress(ctx)));
        return result;
    }

    /// <summary>Starts (or updates) a phase: <paramref name="done"/> of <paramref name="total"/> units, with a note.</summary>
    public void Report(string phase, double done, double total, string? note = null)
    {
        lock (_gate)
        {
            if (!_phases.TryGetValue(phase, out var entry))
                _phases[phase] = entry = (_context?.AddTask(Markup.Escape(phase), maxValue: Math.Max(total, 1)), Stopwatch.StartNew());
            if (entry.Task is { } task)
            {
                task.MaxValue = Math.Max(total, 1);
                task.Value = done;
                task.Description = Markup.Escape(note is null ? phase : $"{phase}: {note}");
            }
        }
    }

    /// <summary>Completes a phase; without a terminal this prints "phase: summary (1.2 s)".</summary>
    public void Done(string phase, string summary)
    {
        lock (_gate)
        {
            if (!_phases.TryGetValue(phase, out var entry)) _phases[phase] = entry = (_context?.AddTask(Markup.Escape(phase)), Stopwatch.StartNew());
            if (entry.Task is { } task)
            {
                task.Value = task.MaxValue;
                task.Description = Markup.Escape($"{phase}: {summary}");
                task.StopTask();
            }
            else
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{phase}: {summary} ({entry.Clock.Elapsed.TotalSeconds:F1} s)"));
            }
        }
    }
}
