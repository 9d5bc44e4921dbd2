using System.Diagnostics;
using Serverless.Federation.Compression;
using Serverless.Federation.SecureAggregation;

namespace Serverless.Federation.Simulation;

/// <summary>How updates are compressed when secure aggregation is off.</summary>
/// <param name="QuantizationBits">0 = float32; otherwise stochastic quantization to this many bits.</param>
/// <param name="TopKFraction">0 = dense; otherwise send this fraction of entries, with error feedback.</param>
/// <param name="ChunkSize">Quantization chunk (one min/max pair per chunk).</param>
public sealed record CompressionOptions(int QuantizationBits = 8, double TopKFraction = 0, int ChunkSize = 256);

/// <summary>Rejects a round whose aggregate scores worse on the hold-out set than the current model by more than <paramref name="MaxDrop"/>.</summary>
/// <param name="Score">Hold-out score of a parameter vector, higher is better (e.g. AUROC).</param>
/// <param name="MaxDrop">Largest tolerated drop.</param>
public sealed record ValidationGate(Func<float[], double> Score, double MaxDrop);

/// <summary>Simulation settings.</summary>
public sealed record SimulationOptions
{
    /// <summary>Rounds to run (fewer if the privacy budget refuses one).</summary>
    public int Rounds { get; init; } = 5;

    /// <summary>Secure aggregation (null = updates visible to the server).</summary>
    public SecureAggregationOptions? SecureAggregation { get; init; }

    /// <summary>Compression of visible updates (ignored under secure aggregation, whose ring width sets the bytes).</summary>
    public CompressionOptions? Compression { get; init; }

    /// <summary>Probability that a selected client drops out in a round (at a uniformly chosen protocol phase).</summary>
    public double DropoutRate { get; init; }

    /// <summary>Gate on the aggregate's hold-out score (the defence that still works under secure aggregation).</summary>
    public ValidationGate? Gate { get; init; }

    /// <summary>Score reported per round (for example pooled hold-out AUROC), or null.</summary>
    public Func<float[], double>? Monitor { get; init; }

    /// <summary>Run client training in parallel (each client owns its model and trainer).</summary>
    public bool ParallelClients { get; init; } = true;

    /// <summary>Seed of dropouts, noise and rounding.</summary>
    public int Seed { get; init; } = 1;
}

/// <summary>What happened in one round.</summary>
public sealed record RoundReport(
    int Round, int Selected, IReadOnlyList<string> Aggregated, IReadOnlyList<string> Dropped, IReadOnlyList<RoundExclusion> Excluded,
    bool Rejected, string? RejectionReason, double? Score, double? Epsilon,
    long BytesPlainPerClient, long BytesSentPerClient,
    TimeSpan MaxClientTrainingTime, TimeSpan MaxClientProtocolTime, TimeSpan ServerTime,
    EvaluationSummary? Evaluation);

/// <summary>The outcome of a simulation: the final parameters, and the round (and its parameters) that scored best in federated evaluation (validation AUROC, else loss).</summary>
public sealed record SimulationResult(float[] Parameters, IReadOnlyList<RoundReport> Rounds, string? StoppedBecause)
{
    /// <summary>Parameters after the best-evaluated round (the final ones when no round was evaluated).</summary>
    public float[] BestParameters { get; init; } = Parameters;

    /// <summary>That round (0 = none evaluated).</summary>
    public int BestRound { get; init; }
}

/// <summary>
/// An in-process federation: n clients, a strategy, optional secure aggregation (the full protocol,
/// every message), DP (through a strategy wrapper), compression, dropouts, attackers and a
/// validation gate, without a network. Deterministic for a seed apart from the protocol's own keys,
/// which never change the exact sum.
/// </summary>
public sealed class FederatedSimulator(IStrategy strategy, IReadOnlyList<IFederatedClient> clients, SimulationOptions options)
{
    private readonly Dictionary<string, TopKSparsifier> _sparsifiers = [];

    /// <summary>Runs the rounds from <paramref name="initialParameters"/>.</summary>
    public SimulationResult Run(float[] initialParameters)
    {
        var rng = new Random(options.Seed);
        var global = (float[])initialParameters.Clone();
        var reports = new List<RoundReport>();
        var ids = clients.Select(c => c.Id).ToArray();
        var byId = clients.ToDictionary(c => c.Id);
        double? currentScore = options.Gate?.Score(global);
        var best = (Loss: double.PositiveInfinity, Round: 0, Parameters: global);
        SimulationResult Done(string? why) => new(global, reports, why) { BestParameters = best.Round > 0 ? best.Parameters : global, BestRound = best.Round };
        for (var round = 1; round <= options.Rounds; round++)
        {
            IReadOnlyList<FitInstruction> instructions;
            try { instructions = strategy.ConfigureRound(round, global, ids); }
            catch (PrivacyBudgetExceededException e) { return Done(e.Message); }

            // Local training (timed per client: clients run on their own machines in parallel).
            var results = new FitResult[instructions.Count];
            var trainTimes = new TimeSpan[instructions.Count];
            void TrainOne(int k)
            {
                var start = Stopwatch.GetTimestamp();
                var r = byId[instructions[k].ClientId].Fit(instructions[k]);
                results[k] = PrepareOnClient(r, instructions[k].Config);
                trainTimes[k] = Stopwatch.GetElapsedTime(start);
            }
            if (options.ParallelClients) Parallel.For(0, instructions.Count, TrainOne);
            else for (var k = 0; k < instructions.Count; k++) TrainOne(k);

            // Who drops out, and before which phase.
            var dropped = new Dictionary<string, SecAggPhase>();
            foreach (var ins in instructions)
                if (rng.NextDouble() < options.DropoutRate) dropped[ins.ClientId] = (SecAggPhase)rng.Next(0, 4);

            var serverStart = Stopwatch.GetTimestamp();
            AggregateResult aggregate;
            IReadOnlyList<string> aggregatedIds;
            long bytesSent;
            var plainBytes = 4L * global.Length;
            TimeSpan maxProtocol = TimeSpan.Zero, serverTime;
            var excluded = new List<RoundExclusion>();
            if (options.SecureAggregation is { } sa)
            {
                var clip = instructions[0].Config.ClipNorm;
                var std = instructions[0].Config.NoiseStd;
                var bound = (float)((clip > 0 ? clip : sa.ClipRange) + 6 * std);
                var uniform = instructions[0].Config.UniformWeight;
                var inputs = results.Select(r => (r.ClientId, r.Delta, uniform ? 1.0 : r.NumExamples)).ToArray();
                SecureUpdateAggregation.Outcome outcome;
                try { outcome = SecureUpdateAggregation.Aggregate(inputs, sa, bound, dropped, rng); }
                catch (SecAggAbortedException e)
                {
                    reports.Add(new RoundReport(round, instructions.Count, [], dropped.Keys.Order().ToArray(), [], true, "secure aggregation aborted: " + e.Message,
                        currentScore, null, plainBytes, 0, trainTimes.Max(), TimeSpan.Zero, Stopwatch.GetElapsedTime(serverStart), null));
                    continue;
                }
                excluded.AddRange(outcome.Excluded);
                aggregatedIds = outcome.Included;
                var summed = new FitResult("secure-aggregate", outcome.Mean, Math.Max(1, (int)Math.Round(outcome.TotalWeight)));
                var agStart = Stopwatch.GetTimestamp();
                aggregate = strategy.AggregateRound(round, global, [summed]);
                serverTime = outcome.Stats.ServerTime + Stopwatch.GetElapsedTime(agStart);
                maxProtocol = outcome.Stats.ClientTimes.Values.Max();
                bytesSent = (long)outcome.Stats.BytesUploaded.Where(kv => !dropped.ContainsKey(inputs[kv.Key - 1].ClientId)).Select(kv => kv.Value).DefaultIfEmpty(0).Average();
            }
            else
            {
                // Visible updates: compress on the client, frame, validate and decode on the server.
                var received = new List<FitResult>();
                var frameBytes = new List<long>();
                foreach (var r in results)
                {
                    if (dropped.ContainsKey(r.ClientId)) continue;
                    var frame = Encode(r, round);
                    frameBytes.Add(frame.Length);
                    try { received.Add(r with { Delta = UpdateFrame.DecodeToDense(frame, global.Length) }); }
                    catch (FrameFormatException e) { excluded.Add(new RoundExclusion(r.ClientId, "bad frame: " + e.Message)); }
                }
                bytesSent = frameBytes.Count == 0 ? 0 : (long)frameBytes.Average();
                if (received.Count == 0)
                {
                    reports.Add(new RoundReport(round, instructions.Count, [], dropped.Keys.Order().ToArray(), excluded, true, "no update arrived",
                        currentScore, null, plainBytes, bytesSent, trainTimes.Max(), TimeSpan.Zero, TimeSpan.Zero, null));
                    continue;
                }
                var weighted = instructions[0].Config.UniformWeight ? received.Select(r => r with { NumExamples = 1 }).ToList() : received;
                aggregate = strategy.AggregateRound(round, global, weighted);
                serverTime = Stopwatch.GetElapsedTime(serverStart);
                aggregatedIds = received.Select(r => r.ClientId).Where(id => aggregate.Excluded.All(e => e.ClientId != id)).ToArray();
            }
            excluded.AddRange(aggregate.Excluded);

            // Validation gate: the only defence left when the server cannot see updates.
            bool rejected = false;
            string? reason = null;
            double? score = null;
            if (options.Gate is { } gate)
            {
                score = gate.Score(aggregate.Parameters);
                if (currentScore is { } cur && score < cur - gate.MaxDrop)
                {
                    rejected = true;
                    reason = $"hold-out score {score:F4} is below the current {cur:F4} by more than {gate.MaxDrop}";
                }
            }
            if (!rejected)
            {
                global = aggregate.Parameters;
                if (score is not null) currentScore = score;
            }
            var monitor = options.Monitor?.Invoke(global);
            var evalInstructions = strategy.ConfigureEvaluation(round, global, ids);
            var evaluation = evalInstructions.Count == 0 ? null
                : strategy.AggregateEvaluation(round, evalInstructions.Select(e => byId[e.ClientId].Evaluate(e)).ToArray());
            // Model selection on the clients' validation data: highest AUROC when reported, else lowest loss.
            if (evaluation is not null)
            {
                var criterion = evaluation.Metrics.TryGetValue("auroc", out var auroc) && double.IsFinite(auroc) ? -auroc : evaluation.Loss;
                if (criterion < best.Loss) best = (criterion, round, global);
            }
            reports.Add(new RoundReport(round, instructions.Count, aggregatedIds, dropped.Keys.Order().ToArray(), excluded, rejected, reason,
                monitor ?? score, aggregate.Metrics.TryGetValue("epsilon", out var eps) ? eps : null, plainBytes, bytesSent,
                trainTimes.Max(), maxProtocol, serverTime, evaluation));
        }
        return Done(null);
    }

    // What a client agent does before upload: clip to the enforced bound, add its share of DP noise.
    private FitResult PrepareOnClient(FitResult r, FitConfig config)
    {
        var d = (float[])r.Delta.Clone();
        if (config.ClipNorm > 0) GaussianMechanism.ClipL2(d, config.ClipNorm);
        if (config.NoiseStd > 0) GaussianMechanism.AddGaussianNoise(d, config.NoiseStd, new Random(config.Seed));
        return r with { Delta = d };
    }

    private byte[] Encode(FitResult r, int round)
    {
        var c = options.Compression;
        if (c is null) return UpdateFrame.EncodeDense(r.Delta);
        var delta = r.Delta;
        if (c.TopKFraction > 0)
        {
            if (!_sparsifiers.TryGetValue(r.ClientId, out var sp)) _sparsifiers[r.ClientId] = sp = new TopKSparsifier(delta.Length, c.TopKFraction);
            var sparse = sp.Compress(delta);
            return UpdateFrame.EncodeSparse(sparse);
        }
        if (c.QuantizationBits > 0)
            return UpdateFrame.EncodeQuantized(StochasticQuantizer.Quantize(delta, c.QuantizationBits, c.ChunkSize, new Random(StableHash.Of(options.Seed, round, r.ClientId))));
        return UpdateFrame.EncodeDense(delta);
    }
}
