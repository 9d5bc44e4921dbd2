using System.Globalization;
using System.Text;

namespace Serverless.Telemetry.Collection;

/// <summary>One step of a critical path: a span that the end waited on, or a wait between two such spans.</summary>
public sealed record PathStep(string Name, string Service, DateTime Start, DateTime End, bool IsWait, IReadOnlyList<PathStep> Inner)
{
    public TimeSpan Duration => End - Start;
}

/// <summary>
/// Where a span's time went: walking back from its end, the child that finished last, then the child that
/// finished last before that one started, and so on; the gaps between them are waits (the span was idle, or
/// busy with work no child span covers). Each step is broken down the same way, <c>depth</c> levels deep.
/// </summary>
public static class CriticalPath
{
    public static IReadOnlyList<PathStep> Of(IReadOnlyCollection<CollectedSpan> trace, CollectedSpan root, int depth = 2)
    {
        var children = trace.Where(s => s.ParentSpanId is not null).ToLookup(s => s.ParentSpanId!);
        return Steps(children, root, depth);
    }

    private static List<PathStep> Steps(ILookup<string, CollectedSpan> children, CollectedSpan span, int depth)
    {
        var steps = new List<PathStep>();
        if (depth == 0) return steps;
        var kids = children[span.SpanId].Where(c => c.End > span.Start && c.Start < span.End).ToList();
        var cursor = span.End;
        while (true)
        {
            var last = kids.Where(c => Clamp(c.End, span) <= cursor && c.Start < cursor).MaxBy(c => c.End);
            if (last is null) break;
            var end = Clamp(last.End, span);
            if (cursor - end > TimeSpan.FromMilliseconds(1)) steps.Add(Wait(end, cursor));
            var start = last.Start < span.Start ? span.Start : last.Start;
            steps.Add(new PathStep(last.Name, last.Service, start, end, false, Steps(children, last, depth - 1)));
            cursor = start;
            kids.Remove(last);
        }
        if (cursor - span.Start > TimeSpan.FromMilliseconds(1)) steps.Add(Wait(span.Start, cursor));
        steps.Reverse();
        return steps;
    }

    private static DateTime Clamp(DateTime t, CollectedSpan span) => t > span.End ? span.End : t;

    private static PathStep Wait(DateTime start, DateTime end) => new("wait", "", start, end, true, []);

    /// <summary>The path as indented lines: offset from the root's start, duration, name and process.</summary>
    public static string Format(CollectedSpan root, IReadOnlyList<PathStep> steps)
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{root.Name}: {root.Duration.TotalSeconds:0.000} s ({root.Service})\n");
        Append(text, root.Start, steps, "  ");
        return text.ToString();
    }

    private static void Append(StringBuilder text, DateTime origin, IReadOnlyList<PathStep> steps, string indent)
    {
        foreach (var step in steps)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{indent}+{(step.Start - origin).TotalSeconds,7:0.000} s {step.Duration.TotalSeconds,7:0.000} s  {step.Name}{(step.IsWait ? "" : $" [{step.Service}]")}\n");
            Append(text, origin, step.Inner, indent + "  ");
        }
    }
}
