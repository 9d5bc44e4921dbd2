namespace Serverless.Federation.Strategies;

// The records a strategy exchanges with clients. They hold flat parameter vectors (the model's
// ParameterLayout order) and are plain data, so an orchestration can persist or ship them.

/// <summary>What a client is asked to do in a round.</summary>
/// <param name="Round">1-based round number.</param>
/// <param name="LocalEpochs">Epochs of local training.</param>
/// <param name="LearningRate">Local optimiser step size.</param>
/// <param name="ProximalMu">FedProx's mu (0 = plain FedAvg): the local loss gets (mu/2)||w - w_global||^2.</param>
/// <param name="Seed">Seed for the client's local randomness (batches, rounding), so simulations replay.</param>
/// <param name="ClipNorm">When positive, the client clips its update to this L2 norm (enforced norm bound / DP).</param>
/// <param name="NoiseStd">Per-coordinate Gaussian std the client adds after clipping (distributed DP); 0 = none.</param>
/// <param name="UniformWeight">Aggregate this update with weight 1 instead of its example count (DP needs bounded sensitivity).</param>
/// <param name="DpSgd">Patient-level DP: train locally with DP-SGD at these settings (null = ordinary local training).</param>
public sealed record FitConfig(int Round, int LocalEpochs, double LearningRate, double ProximalMu, int Seed, double ClipNorm = 0, double NoiseStd = 0, bool UniformWeight = false,
    DpSgdInstruction? DpSgd = null);

/// <summary>DP-SGD settings a client trains with (see <c>Serverless.Model.Training.DpSgdOptions</c>).</summary>
/// <param name="ClipNorm">C: per-record gradient bound.</param>
/// <param name="NoiseMultiplier">sigma: noise std on the sum of clipped gradients is sigma C.</param>
/// <param name="ExpectedBatchSize">L: Poisson sampling rate q = L / records.</param>
public sealed record DpSgdInstruction(double ClipNorm, double NoiseMultiplier, int ExpectedBatchSize);

/// <summary>A fit request: the global parameters and the config.</summary>
public sealed record FitInstruction(string ClientId, float[] Parameters, FitConfig Config);

/// <summary>A client's answer: its update as a delta against the global parameters it was given.</summary>
public sealed record FitResult(string ClientId, float[] Delta, int NumExamples, IReadOnlyDictionary<string, double>? Metrics = null);

/// <summary>An update left out of aggregation, and why.</summary>
public sealed record RoundExclusion(string ClientId, string Reason);

/// <summary>The new global parameters, with metrics and what was excluded.</summary>
public sealed record AggregateResult(float[] Parameters, IReadOnlyDictionary<string, double> Metrics, IReadOnlyList<RoundExclusion> Excluded);

/// <summary>An evaluation request.</summary>
public sealed record EvaluateInstruction(string ClientId, float[] Parameters, int Round);

/// <summary>A client's evaluation on its own hold-out data.</summary>
public sealed record EvaluateResult(string ClientId, int NumExamples, double Loss, IReadOnlyDictionary<string, double> Metrics);

/// <summary>Evaluation across clients, weighted by examples.</summary>
public sealed record EvaluationSummary(double Loss, IReadOnlyDictionary<string, double> Metrics, int Clients);

/// <summary>
/// A federated strategy with Flower's four verbs. Implementations are deterministic given their
/// seed; wrappers (differential privacy) compose around any strategy.
/// </summary>
public interface IStrategy
{
    /// <summary>Chooses clients and what they should do this round.</summary>
    IReadOnlyList<FitInstruction> ConfigureRound(int round, float[] globalParameters, IReadOnlyList<string> availableClients);

    /// <summary>Turns the clients' deltas into new global parameters.</summary>
    AggregateResult AggregateRound(int round, float[] globalParameters, IReadOnlyList<FitResult> results);

    /// <summary>Chooses clients to evaluate the given parameters.</summary>
    IReadOnlyList<EvaluateInstruction> ConfigureEvaluation(int round, float[] parameters, IReadOnlyList<string> availableClients);

    /// <summary>Combines the clients' evaluations.</summary>
    EvaluationSummary AggregateEvaluation(int round, IReadOnlyList<EvaluateResult> results);
}
