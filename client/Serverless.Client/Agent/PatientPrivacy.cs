using Serverless.Model.Training;
using Serverless.Privacy.DifferentialPrivacy;

namespace Serverless.Client.Agent;

/// <summary>Which differential privacy this agent applies to its local training.</summary>
internal enum DpMode
{
    /// <summary>Client-level DP only (the server's plan: clip the whole update, add this client's noise share).</summary>
    Client,

    /// <summary>Patient-level DP: DP-SGD over the local records, with a per-patient budget this agent keeps itself.</summary>
    Patient,
}

/// <summary>Patient-level DP settings of an agent (<c>agent run --dp-mode patient</c>).</summary>
/// <param name="ClipNorm">C: per-record gradient bound.</param>
/// <param name="NoiseMultiplier">sigma: noise std sigma C on each step's sum of clipped gradients.</param>
/// <param name="ExpectedBatchSize">L: Poisson sampling rate q = L / local records.</param>
/// <param name="Delta">Delta of the per-patient guarantee; must be below 1 / local records.</param>
/// <param name="EpsilonBudget">The per-patient epsilon this agent will never exceed, across all rounds of all federations.</param>
internal sealed record PatientPrivacySettings(double ClipNorm, double NoiseMultiplier, int ExpectedBatchSize, double Delta, double EpsilonBudget)
{
    /// <exception cref="ArgumentException">a value out of range.</exception>
    public PatientPrivacySettings Validated()
    {
        if (!(ClipNorm > 0 && double.IsFinite(ClipNorm))) throw new ArgumentException("--dp-clip must be positive");
        if (!(NoiseMultiplier > 0 && double.IsFinite(NoiseMultiplier))) throw new ArgumentException("--dp-noise must be positive");
        if (ExpectedBatchSize is < 1 or > 65_536) throw new ArgumentException("--dp-batch must be between 1 and 65536");
        if (!(Delta > 0 && Delta < 1)) throw new ArgumentException("--patient-delta must be in (0, 1)");
        if (!(EpsilonBudget > 0 && double.IsFinite(EpsilonBudget))) throw new ArgumentException("--patient-epsilon must be positive");
        return this;
    }
}

/// <summary>
/// The agent's per-patient accountant: the RDP curve of every DP-SGD step it ever ran on its records
/// (all rounds, all federations: the same patients), kept in <c>patient-privacy.json</c> in the agent
/// directory (public numbers, no patient data; written by rename, so a crash keeps the old or the new
/// curve). The hospital keeps its own account rather than trusting the server's.
/// </summary>
internal sealed class PatientPrivacy
{
    public const string FileName = "patient-privacy.json";

    private readonly string? _path;
    private readonly long _stepsBefore;

    private PatientPrivacy(PatientPrivacySettings settings, PrivacyBudget budget, string? path, long stepsBefore = 0)
    {
        Settings = settings;
        Budget = budget;
        _path = path;
        _stepsBefore = stepsBefore;
    }

    /// <summary>DP-SGD steps charged to these patients in total (the budget's own count restarts with the process; the RDP curve does not).</summary>
    public long StepsSpent => _stepsBefore + Budget.StepsSpent;

    public PatientPrivacySettings Settings { get; }

    public PrivacyBudget Budget { get; }

    /// <summary>Loads the account from <paramref name="directory"/> (a fresh one when there is none; null = in memory only).</summary>
    /// <exception cref="InvalidDataException">the file is malformed or was kept at another delta.</exception>
    public static PatientPrivacy Open(PatientPrivacySettings settings, string? directory)
    {
        settings = settings.Validated();
        var path = directory is null ? null : Path.Combine(directory, FileName);
        if (path is null || !File.Exists(path)) return new PatientPrivacy(settings, new PrivacyBudget(settings.EpsilonBudget, settings.Delta), path);
        Account? account;
        try
        {
            account = JsonSerializer.Deserialize<Account>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{FileName} is not a valid privacy account: {e.Message}");
        }
        if (account is null || account.Orders is null || account.Rdp is null || account.Orders.Length != account.Rdp.Length || account.Orders.Length == 0)
            throw new InvalidDataException($"{FileName} is not a valid privacy account");
        if (account.Delta != settings.Delta)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{FileName} was kept at delta {account.Delta:G3}, not {settings.Delta:G3}: keep the same delta for the same patients"));
        foreach (var v in account.Orders.Concat(account.Rdp))
            if (!double.IsFinite(v) || v < 0) throw new InvalidDataException($"{FileName} holds an invalid value");
        PrivacyBudget budget;
        try
        {
            budget = new PrivacyBudget(settings.EpsilonBudget, settings.Delta, account.Orders, account.Rdp);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{FileName} is not a valid privacy account: {e.Message}");
        }
        if (account.Steps < 0) throw new InvalidDataException($"{FileName} holds an invalid step count");
        return new PatientPrivacy(settings, budget, path, account.Steps);
    }

    /// <summary>The DP-SGD trainer options for <paramref name="records"/> records and <paramref name="epochs"/> epochs, after checking the budget; spends nothing.</summary>
    /// <exception cref="InvalidDataException">delta is not below 1/records, or the round would exceed the per-patient budget (refused before training).</exception>
    public (DpSgdOptions Options, double Q, long Steps) Plan(int round, int records, int epochs, Random randomness)
    {
        var s = Settings;
        if (s.Delta >= 1.0 / records)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"patient-level DP: delta {s.Delta:G3} is not below 1/records = {1.0 / records:G3}; choose a smaller --patient-delta"));
        var q = DpSgdOptions.SamplingRate(s.ExpectedBatchSize, records);
        var steps = DpSgdOptions.PlannedSteps(s.ExpectedBatchSize, records, epochs);
        var after = Budget.EpsilonAfter(q, s.NoiseMultiplier, steps);
        if (after > s.EpsilonBudget)
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"patient-level DP: round {round} refused before training: per-patient epsilon would reach {after:F3} > budget {s.EpsilonBudget:G4} (spent {Budget.EpsilonSpent:F3} at delta {s.Delta:G3})"));
        return (new DpSgdOptions { ClipNorm = s.ClipNorm, NoiseMultiplier = s.NoiseMultiplier, ExpectedBatchSize = s.ExpectedBatchSize, Randomness = randomness }, q, steps);
    }

    /// <summary>Charges the steps a training run took and persists the account; returns the per-patient epsilon spent.</summary>
    public double Charge(double q, long steps)
    {
        var epsilon = Budget.Spend(q, Settings.NoiseMultiplier, steps);
        if (_path is not null)
        {
            var temp = _path + ".tmp";
            File.WriteAllText(temp, JsonSerializer.Serialize(new Account(Settings.Delta, [.. Budget.Orders], [.. Budget.RdpSpent], StepsSpent, Budget.EpsilonSpent)));
            File.Move(temp, _path, overwrite: true);
        }
        return epsilon;
    }

    /// <summary>One line on the account in <paramref name="directory"/> (null when patient-level DP never ran there).</summary>
    public static string? Summary(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            var a = JsonSerializer.Deserialize<Account>(File.ReadAllText(path));
            return a is null ? null : string.Create(CultureInfo.InvariantCulture, $"patient-level DP: per-patient epsilon {a.Epsilon:F3} at delta {a.Delta:G3} after {a.Steps} DP-SGD steps");
        }
        catch (JsonException)
        {
            return $"patient-level DP: {FileName} is unreadable";
        }
    }

    private sealed record Account(double Delta, double[] Orders, double[] Rdp, long Steps, double Epsilon);
}
