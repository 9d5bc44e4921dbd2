using System.Text.RegularExpressions;

namespace Serverless.Federation.Rounds;

/// <summary>Validation of a federation's configuration and the model it implies.</summary>
public static partial class FederationRules
{
    [GeneratedRegex("^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){2,39}$")]
    private static partial Regex IdPattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    private static partial Regex ClientIdPattern();

    /// <summary>3-40 characters: lower-case letters, digits, single hyphens; starts with a letter.</summary>
    public static bool IsValidId(string? id) => id is not null && IdPattern().IsMatch(id);

    /// <summary>A client id (certificate CN): 1-63 of letters, digits, '.', '_', '-', starting with a letter or digit.</summary>
    public static bool IsValidClientId(string? id) => id is not null && ClientIdPattern().IsMatch(id);

    /// <summary>The data schema (the configured one or the generator's).</summary>
    public static FeatureSchema SchemaOf(FederationConfig config) => config.Schema ?? CohortGenerator.Schema;

    /// <summary>Model input width per visit for a schema (the preprocessor's one-hot layout).</summary>
    public static int FeatureCount(FeatureSchema schema)
    {
        var n = 0;
        foreach (var spec in schema.StaticFeatures.Concat(schema.VisitFeatures))
            n += spec.Kind == FeatureKind.Numeric ? 1 : spec.CategoryCount;
        return n;
    }

    /// <summary>The model configuration a federation trains.</summary>
    public static ModelConfig ModelConfigOf(FederationConfig config)
    {
        var schema = SchemaOf(config);
        var m = config.Model;
        return new ModelConfig
        {
            Features = FeatureCount(schema),
            Steps = m.Steps,
            Architecture = m.Architecture,
            ConvChannels = m.ConvChannels,
            KernelSize = m.KernelSize,
            LstmHidden = m.LstmHidden,
            HeadHidden = m.HeadHidden,
            Classes = schema.Classes,
            Task = schema.Classes == 2 ? TaskKind.Binary : TaskKind.Multiclass,
        };
    }

    /// <summary>Every problem with a configuration, as (field, message); empty when valid.</summary>
    public static IReadOnlyList<(string Field, string Message)> Validate(FederationConfig? config)
    {
        var errors = new List<(string, string)>();
        void Check(bool ok, string field, string message) { if (!ok) errors.Add((field, message)); }
        if (config is null) { errors.Add(("", "a federation configuration is required")); return errors; }
        Check(IsValidId(config.Id), "id", "3-40 characters: lower-case letters, digits and single hyphens, starting with a letter");
        if (config.Model is null || config.Training is null || config.Privacy is null || config.SecureAggregation is null || config.Deadlines is null || config.Promotion is null)
        {
            errors.Add(("", "model, training, privacy, secureAggregation, deadlines and promotion must not be null (omit them for the defaults)"));
            return errors;
        }
        if (config.Schema is { } schema)
        {
            Check(schema.StaticFeatures is not null && schema.VisitFeatures is not null && schema.ClassNames is not null, "schema", "staticFeatures, visitFeatures and classNames are required");
            if (schema.StaticFeatures is not null && schema.VisitFeatures is not null && schema.ClassNames is not null)
            {
                Check(schema.ClassNames.Count >= 2, "schema.classNames", "at least two classes");
                Check(schema.StaticFeatures.Count + schema.VisitFeatures.Count >= 1, "schema", "at least one feature");
                foreach (var f in schema.StaticFeatures.Concat(schema.VisitFeatures))
                    Check(f is not null && !string.IsNullOrEmpty(f.Name) && (f.Kind == FeatureKind.Numeric || f.CategoryCount > 0), "schema", $"feature '{f?.Name}' needs a name (and categories when categorical)");
            }
        }
        var m = config.Model;
        Check(m.Steps is >= 1 and <= 1024, "model.steps", "must be 1..1024");
        Check(m.ConvChannels is >= 1 and <= 1024, "model.convChannels", "must be 1..1024");
        Check(m.KernelSize is >= 1 and <= 64, "model.kernelSize", "must be 1..64");
        Check(m.LstmHidden is >= 1 and <= 1024, "model.lstmHidden", "must be 1..1024");
        Check(m.HeadHidden is >= 0 and <= 1024, "model.headHidden", "must be 0..1024");
        Check(Enum.IsDefined(m.Architecture), "model.architecture", "unknown architecture");
        var t = config.Training;
        Check(t.LocalEpochs is >= 1 and <= 100, "training.localEpochs", "must be 1..100");
        Check(t.LearningRate is > 0 and <= 10, "training.learningRate", "must be in (0, 10]");
        Check(t.ProximalMu is >= 0 and <= 100, "training.proximalMu", "must be in [0, 100]");
        Check(t.BatchSize is >= 1 and <= 65536, "training.batchSize", "must be 1..65536");
        Check(t.WeightCap >= 0, "training.weightCap", "must not be negative");
        var p = config.Privacy;
        if (p.Enabled)
        {
            Check(p.EpsilonBudget is > 0 and <= 1000, "privacy.epsilonBudget", "must be in (0, 1000]");
            Check(p.Delta is > 0 and < 1, "privacy.delta", "must be in (0, 1)");
            Check(p.NoiseMultiplier is > 0 and <= 1000, "privacy.noiseMultiplier", "must be in (0, 1000] when privacy is enabled");
            Check(p.ClipNorm is > 0 and <= 1e6, "privacy.clipNorm", "must be positive when privacy is enabled");
            Check(p.StatisticsNoiseMultiplier is > 0 and <= 1000, "privacy.statisticsNoiseMultiplier", "must be in (0, 1000] when privacy is enabled");
            if (p.StatisticsRanges is { } ranges)
                foreach (var (name, range) in ranges)
                    Check(range is { IsValid: true }, "privacy.statisticsRanges", $"the range of '{name}' must be finite with lower < upper");
            if (!errors.Any(e => e.Item1 == "schema" || e.Item1.StartsWith("schema.", StringComparison.Ordinal)))
            {
                var missing = StatisticsMechanism.MissingRanges(p, SchemaOf(config).NumericColumns());
                Check(missing.Count == 0, "privacy.statisticsRanges", $"numeric columns need a public range for the private statistics stage: {string.Join(", ", missing)}");
            }
        }
        else
        {
            Check(p.ClipNorm is >= 0 and <= 1e6 && double.IsFinite(p.ClipNorm), "privacy.clipNorm", "must be 0 (no clipping) or positive");
        }
        var s = config.SecureAggregation;
        Check(s.ThresholdFraction is >= 0 and < 1, "secureAggregation.thresholdFraction", "must be in [0, 1)");
        Check(s.Threshold >= 0, "secureAggregation.threshold", "must not be negative");
        Check(s.RingBits is >= 8 and <= 32, "secureAggregation.ringBits", "must be 8..32");
        Check(s.QuantizationBits == 0 || s.QuantizationBits is >= 4 and <= 24, "secureAggregation.quantizationBits", "must be 0 (use ringBits) or 4..24");
        Check(config.MinClients is >= 2 and <= 10_000, "minClients", "must be 2..10000 (secure aggregation needs at least two)");
        Check(config.ClientsPerRound == 0 || (config.ClientsPerRound >= config.MinClients && config.ClientsPerRound <= 10_000), "clientsPerRound", "must be 0 (all enrolled) or between minClients and 10000");
        if (s.Enabled && s.Threshold > 0)
            Check(s.Threshold <= config.MinClients - 1, "secureAggregation.threshold", "must be at most minClients - 1 (a client's secret is shared among its neighbours)");
        var d = config.Deadlines;
        foreach (var (name, value) in new[] { ("advertiseKeys", d.AdvertiseKeys), ("shareKeys", d.ShareKeys), ("maskedInput", d.MaskedInput), ("consistencyCheck", d.ConsistencyCheck), ("unmasking", d.Unmasking), ("upload", d.Upload) })
            Check(value >= TimeSpan.FromSeconds(1) && value <= TimeSpan.FromDays(7), "deadlines." + name, "must be between 1 second and 7 days");
        Check(config.Promotion.MaxAurocDrop is >= 0 and <= 1, "promotion.maxAurocDrop", "must be in [0, 1]");
        // The schedule (six-field cron) is checked by the host, which owns the cron parser.
        if (config.AllowedClients is not null)
            foreach (var c in config.AllowedClients)
                Check(IsValidClientId(c), "allowedClients", $"'{c}' is not a valid client id");
        if (errors.Count == 0)
        {
            try { ModelConfigOf(config).Validated(); }
            catch (ArgumentException e) { errors.Add(("model", e.Message)); }
        }
        return errors;
    }
}
