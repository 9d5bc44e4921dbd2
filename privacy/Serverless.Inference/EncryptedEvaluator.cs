namespace Serverless.Inference;

/// <summary>
/// Server side: evaluates the HE-friendly CNN-LSTM on encrypted batches with a partner's evaluation
/// keys. Holds no secret material (there is none server-side). Thread-safe; work inside one group is
/// spread over <see cref="MaxDegreeOfParallelism"/> threads, and groups are independent, so an
/// orchestration can fan out one activity per group (<see cref="EvaluateGroup"/>) and
/// <see cref="EncryptedResult.Join"/> the results.
/// </summary>
public sealed class EncryptedEvaluator
{
    private readonly HeModel _model;
    private readonly EvaluationKeys _keys;
    private readonly Evaluator _evaluator;

    /// <param name="model">The HE model; its <see cref="HeModel.Plan"/> must be the plan the keys and batches were read with.</param>
    /// <param name="keys">The partner's registered evaluation keys.</param>
    /// <exception cref="ArgumentException">The keys belong to another plan (other parameters or another context).</exception>
    public EncryptedEvaluator(HeModel model, EvaluationKeys keys)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(keys);
        if (!keys.Plan.ParameterHash.Span.SequenceEqual(model.Plan.ParameterHash.Span))
            throw new ArgumentException("the evaluation keys were made under other CKKS parameters than the model's plan", nameof(keys));
        if (!ReferenceEquals(keys.Plan.Context, model.Plan.Context))
            throw new ArgumentException("read the evaluation keys with the model's plan (HeModel.Plan) so they share its CKKS context", nameof(keys));
        _model = model;
        _keys = keys;
        _evaluator = new Evaluator(model.Plan.Context, keys.RelinearizationKey);
    }

    /// <summary>Threads used inside one group (default: all cores).</summary>
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>
    /// Wall milliseconds per circuit stage (and "flood") of the group this evaluator finished last, on any
    /// thread: diagnostics, never data. Null before the first group.
    /// </summary>
    public IReadOnlyDictionary<string, double>? LastStageTimings { get; private set; }

    /// <summary>Evaluates every group of <paramref name="batch"/> in order and joins the results.</summary>
    /// <exception cref="Serverless.Privacy.Serialization.HeFormatException">The batch was encrypted under other keys.</exception>
    public EncryptedResult Evaluate(EncryptedBatch batch, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(batch);
        _keys.CheckKeyId(batch.KeyId.Span, "encrypted batch");
        var results = new EncryptedGroupResult[batch.Groups.Count];
        for (var g = 0; g < results.Length; g++) results[g] = EvaluateGroup(batch.Groups[g], cancellationToken);
        return EncryptedResult.Join(_model.Plan, results);
    }

    /// <summary>Evaluates one group: its encrypted logits, at level <c>LevelsAvailable − LevelsConsumed</c>.</summary>
    /// <exception cref="Serverless.Privacy.Serialization.HeFormatException">The group was encrypted under other keys.</exception>
    /// <exception cref="ArgumentException">The group was read with another plan.</exception>
    /// <exception cref="InvalidOperationException">The modulus chain ran out (a plan that understates its depth).</exception>
    public EncryptedGroupResult EvaluateGroup(CiphertextGroup group, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(group);
        if (!ReferenceEquals(group.Plan.Context, _model.Plan.Context))
            throw new ArgumentException("read the group with the model's plan (HeModel.Plan) so it shares its CKKS context", nameof(group));
        _keys.CheckKeyId(group.KeyId.Span, "ciphertext group");
        var circuit = new HeCircuit(_model.Weights, _evaluator, MaxDegreeOfParallelism, cancellationToken);
        var logits = circuit.Run(group.Inputs);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _evaluator.FloodNoiseInPlace(logits, FloodingBits(logits.Scale));
        var timings = new Dictionary<string, double>(circuit.Timings) { ["flood"] = clock.Elapsed.TotalMilliseconds };
        LastStageTimings = timings;
        return new EncryptedGroupResult(_model.Plan, group.Index, group.RecordCount, group.KeyId.ToArray(), logits);
    }

    /// <summary>Bits of the result scale kept clear of flooding: 17 leaves about 2^-17 of precision per slot before the factor sqrt(N/3).</summary>
    internal const int BudgetBitsBelowScale = 17;

    /// <summary>
    /// Flooding bits for a result at <paramref name="scale"/>: log2(scale) − 17, the most the inference
    /// tests' 1e-3 allows with room (docs/decisions 0021-result-flooding-budget). Slot error
    /// σ ≈ 2^b·sqrt(N/3)/scale = 2^-17·sqrt(N/3) on the logit, 5.6e-4 at N = 16384, and the sigmoid's
    /// slope is at most 1/4: σ ≈ 1.4e-4 on the score, about 6e-4 at the maximum over 8192 slots. It
    /// exceeds the circuit's own noise (the noise difference of two equal-score results, 2^14.5 at
    /// N = 16384, 2^10 at the tests' N = 4096) by 2^6.5–2^7. It is not the flooding lemma's λ_s = 40
    /// statistical bits: that needs b ≥ log2(N·E) + 40 ≈ 65, and the lemma proves nothing here
    /// (N·E > 2^b): the decision record gives the numbers.
    /// </summary>
    internal static int FloodingBits(double scale) => Math.Clamp((int)Math.Floor(Math.Log2(scale)) - BudgetBitsBelowScale, 1, 60);

    /// <summary>
    /// Measures, with the partner's secret key, how far this plan's result flooding sits above the
    /// circuit's own noise: the first group of two batches that encrypt the same records is evaluated
    /// without flooding, and the noise difference of the two results is compared with the flooding
    /// width. The partner can run it on their own keys; the server cannot (it holds no secret key).
    /// </summary>
    /// <exception cref="ArgumentException">The batches or keys belong to another plan.</exception>
    public static FloodingMargin MeasureFloodingMargin(HeModel model, PartnerKeys keys, EncryptedBatch first, EncryptedBatch second)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(second);
        var context = model.Plan.Context;
        if (!ReferenceEquals(first.Plan.Context, context)) throw new ArgumentException("read the batches with the model's plan (HeModel.Plan)", nameof(first));
        if (!ReferenceEquals(second.Plan.Context, context)) throw new ArgumentException("read the batches with the model's plan (HeModel.Plan)", nameof(second));
        if (!ReferenceEquals(keys.Plan.Context, context)) throw new ArgumentException("the keys were made under another plan than the model's", nameof(keys));
        var evaluator = new Evaluator(context, keys.EvaluationKeys.RelinearizationKey);
        Ciphertext Unflooded(EncryptedBatch batch) =>
            new HeCircuit(model.Weights, evaluator, Environment.ProcessorCount, CancellationToken.None).Run(batch.Groups[0].Inputs);
        // Centred coefficients (message plus noise, far below 2^53) subtract exactly in doubles.
        var decryptor = new Decryptor(context, keys.SecretKey);
        var encoder = new Encoder(context);
        double[] Coefficients(Ciphertext c)
        {
            var coefficients = new double[context.N];
            encoder.ToCenteredCoefficients(decryptor.Decrypt(c), coefficients);
            return coefficients;
        }
        var x = Unflooded(first);
        var a = Coefficients(x);
        var b = Coefficients(Unflooded(second));
        var noise = 1.0;
        for (var i = 0; i < a.Length; i++) noise = Math.Max(noise, Math.Abs(a[i] - b[i]));
        return new FloodingMargin(FloodingBits(x.Scale), noise, context.N);
    }

    /// <summary>One-call form: <c>new EncryptedEvaluator(model, keys).Evaluate(batch)</c>.</summary>
    public static EncryptedResult Evaluate(HeModel model, EncryptedBatch batch, EvaluationKeys keys) =>
        new EncryptedEvaluator(model, keys).Evaluate(batch);
}
