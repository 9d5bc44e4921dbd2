using Serverless.Telemetry.Collection;

namespace Serverless.Telemetry.Tests;

public sealed class CriticalPathTests
{
    private static readonly DateTime T0 = new(2026, 12, 5, 12, 0, 0, DateTimeKind.Utc);

    private static CollectedSpan Span(string name, string id, string? parent, double from, double to) =>
        new("svc", "scope", "t", id, parent, name, 1, T0.AddSeconds(from), T0.AddSeconds(to), new Dictionary<string, string>(), [], 0);

    [Fact]
    public void The_path_walks_back_from_the_end_through_the_child_that_finished_last_and_names_the_gaps_waits()
    {
        var root = Span("round", "r", null, 0, 10);
        var trace = new[]
        {
            root,
            Span("A", "a", "r", 0, 3),    // overlapped by B, which the end waited on: not on the path
            Span("B", "b", "r", 2, 6),
            Span("B1", "b1", "b", 2.5, 5),
            Span("C", "c", "r", 7, 9),
            Span("elsewhere", "x", "other", 0, 10),
        };
        var path = CriticalPath.Of(trace, root);
        Assert.Equal(["wait", "B", "wait", "C", "wait"], path.Select(p => p.Name));
        Assert.Equal([2.0, 4.0, 1.0, 2.0, 1.0], path.Select(p => p.Duration.TotalSeconds));
        Assert.Equal(["wait", "B1", "wait"], path[1].Inner.Select(p => p.Name));
        // The steps tile the root exactly.
        Assert.Equal(10.0, path.Sum(p => p.Duration.TotalSeconds), 9);
        var text = CriticalPath.Format(root, path);
        Assert.Contains("round: 10.000 s (svc)", text);
        Assert.Contains("+  2.000 s   4.000 s  B [svc]", text);
    }

    [Fact]
    public void A_child_that_outlives_its_parent_is_clamped_and_a_span_without_children_is_one_wait()
    {
        var root = Span("round", "r", null, 0, 4);
        var trace = new[] { root, Span("late", "l", "r", 1, 6) };
        var path = CriticalPath.Of(trace, root);
        Assert.Equal(["wait", "late"], path.Select(p => p.Name));
        Assert.Equal(4.0, path[1].End.Subtract(T0).TotalSeconds);
        Assert.Equal(["wait"], CriticalPath.Of([root], root).Select(p => p.Name));
    }
}

public sealed class MessageTraceContextTests
{
    [Theory]
    [InlineData("{\"traceParent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"blob\":\"x\"}", true)]
    [InlineData("{\"blob\":{\"traceParent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"},\"n\":[1,2]}", false)]   // nested: not the message's
    [InlineData("{\"traceParent\":\"not a traceparent\"}", false)]
    [InlineData("{\"traceParent\":42}", false)]
    [InlineData("[\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"]", false)]
    [InlineData("{\"traceParent\":", false)]
    [InlineData("plain text", false)]
    [InlineData("", false)]
    public void Only_a_valid_top_level_traceParent_of_a_JSON_object_is_read(string body, bool found)
    {
        Assert.Equal(found, MessageTraceContext.TryRead(System.Text.Encoding.UTF8.GetBytes(body), out var context));
        if (found) Assert.Equal("0af7651916cd43dd8448eb211c80319c", context.TraceId.ToHexString());
    }

    [Fact]
    public void A_seeded_run_of_mutated_messages_never_throws()
    {
        var random = new Random(17);
        var valid = System.Text.Encoding.UTF8.GetBytes("{\"batchId\":\"b\",\"traceParent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"n\":[1,{\"a\":null}]}");
        var intact = 0;
        for (var i = 0; i < 5000; i++)
        {
            var bytes = valid.AsSpan(0, random.Next(valid.Length + 1)).ToArray();
            for (var flips = random.Next(4); flips > 0 && bytes.Length > 0; flips--) bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
            var found = MessageTraceContext.TryRead(bytes, out var context);
            if (found) Assert.NotEqual(default, context.TraceId);
            if (bytes.AsSpan().SequenceEqual(valid))
            {
                Assert.True(found);
                intact++;
            }
        }
        Assert.True(intact > 0, "the seed never produced the intact message");
    }
}
