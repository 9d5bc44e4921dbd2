namespace Serverless.Model.Data;

/// <summary>Settings of the synthetic longitudinal EHR cohort.</summary>
public sealed record CohortOptions
{
    public int Hospitals { get; init; } = 4;

    /// <summary>Mean patients per hospital; actual sizes vary with <see cref="Heterogeneity"/>.</summary>
    public int PatientsPerHospital { get; init; } = 500;

    /// <summary>Maximum visits per patient (patients have between ceil(Visits/2) and Visits visits).</summary>
    public int Visits { get; init; } = 8;

    public int Seed { get; init; } = 1;

    /// <summary>0 = IID hospitals; 1 = the default spread of age mix, prevalence, measurement bias and size.</summary>
    public double Heterogeneity { get; init; } = 1.0;

    /// <summary>Probability that one measured value is missing.</summary>
    public double MissingRate { get; init; } = 0.05;

    /// <summary>Probability that one measured value is a gross outlier (unit slip, typo).</summary>
    public double OutlierRate { get; init; } = 0.003;

    public void Validate()
    {
        if (Hospitals is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(Hospitals), Hospitals, "1..1000");
        if (PatientsPerHospital is < 1 or > 10_000_000) throw new ArgumentOutOfRangeException(nameof(PatientsPerHospital), PatientsPerHospital, "1..10^7");
        if (Visits is < 2 or > 256) throw new ArgumentOutOfRangeException(nameof(Visits), Visits, "2..256");
        if (!(Heterogeneity >= 0 && Heterogeneity <= 2)) throw new ArgumentOutOfRangeException(nameof(Heterogeneity), Heterogeneity, "0..2");
        if (!(MissingRate >= 0 && MissingRate < 0.5)) throw new ArgumentOutOfRangeException(nameof(MissingRate), MissingRate, "0..0.5");
        if (!(OutlierRate >= 0 && OutlierRate < 0.5)) throw new ArgumentOutOfRangeException(nameof(OutlierRate), OutlierRate, "0..0.5");
    }
}

/// <summary>The patients of one hospital, and the knobs that made it differ from the others.</summary>
public sealed record HospitalCohort(string Hospital, HospitalProfile Profile, IReadOnlyList<PatientRecord> Patients);

/// <summary>How one hospital's population and instruments differ (the non-IID part).</summary>
public sealed record HospitalProfile(double MeanAge, double PrevalenceShift, double SystolicBias, double GlucoseBias, double SizeFactor);

/// <summary>A generated cohort: one schema, several hospitals.</summary>
public sealed record GeneratedCohort(FeatureSchema Schema, IReadOnlyList<HospitalCohort> Hospitals)
{
    /// <summary>All hospitals' patients in hospital order.</summary>
    public PatientCohort All()
    {
        var all = new List<PatientRecord>();
        foreach (var h in Hospitals) all.AddRange(h.Patients);
        return new PatientCohort(Schema, all);
    }
}

/// <summary>
/// Seeded generator of longitudinal EHR cohorts. The outcome (an adverse cardiometabolic event) is driven
/// by each patient's trajectory: the change of HbA1c and systolic pressure across visits and the
/// visit-to-visit variability of pressure. Baselines vary much more between patients than the changes,
/// so a model that sees only the last visit cannot recover the change, while a sequence model can.
/// Hospital <c>h</c>'s patients depend only on (seed, h), not on the number of hospitals.
/// </summary>
public static class CohortGenerator
{
    public const string Age = "age", Sex = "sex", Smoking = "smoking", Hypertension = "hypertension", Diabetes = "diabetes";
    public const string Bmi = "bmi", Systolic = "systolic", Diastolic = "diastolic", Glucose = "glucose",
        HbA1c = "hba1c", Cholesterol = "cholesterol", HeartRate = "heart_rate";

    public static readonly IReadOnlyList<string> SexCategories = ["female", "male"];
    public static readonly IReadOnlyList<string> SmokingCategories = ["never", "former", "current"];
    public static readonly IReadOnlyList<string> OutcomeClasses = ["no_event", "event"];

    /// <summary>The schema of generated (and CSV-imported) cohorts.</summary>
    public static FeatureSchema Schema { get; } = new(
        [
            new FeatureSpec(Age, FeatureKind.Numeric),
            new FeatureSpec(Sex, FeatureKind.Categorical, SexCategories),
            new FeatureSpec(Smoking, FeatureKind.Categorical, SmokingCategories),
            new FeatureSpec(Hypertension, FeatureKind.Numeric),
            new FeatureSpec(Diabetes, FeatureKind.Numeric),
        ],
        [
            new FeatureSpec(Bmi, FeatureKind.Numeric),
            new FeatureSpec(Systolic, FeatureKind.Numeric),
            new FeatureSpec(Diastolic, FeatureKind.Numeric),
            new FeatureSpec(Glucose, FeatureKind.Numeric),
            new FeatureSpec(HbA1c, FeatureKind.Numeric),
            new FeatureSpec(Cholesterol, FeatureKind.Numeric),
            new FeatureSpec(HeartRate, FeatureKind.Numeric),
        ],
        OutcomeClasses);

    public static GeneratedCohort Generate(CohortOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var hospitals = new HospitalCohort[options.Hospitals];
        for (var h = 0; h < options.Hospitals; h++)
            hospitals[h] = GenerateHospital(options, h);
        return new GeneratedCohort(Schema, hospitals);
    }

    /// <summary>The profile of hospital <paramref name="index"/>: a fixed pattern scaled by heterogeneity.</summary>
    public static HospitalProfile Profile(CohortOptions options, int index)
    {
        var k = options.Heterogeneity;
        // A deterministic low-discrepancy spread in [-1, 1] so hospitals differ even when there are two.
        double Spread(double phase) => Math.Sin(2.399963 * index + phase);
        return new HospitalProfile(
            MeanAge: 55 + 10 * k * Spread(0.3),
            PrevalenceShift: 0.6 * k * Spread(1.7),
            SystolicBias: 5 * k * Spread(2.9),
            GlucoseBias: 0.06 * k * Spread(4.1),
            SizeFactor: 1 + 0.5 * k * Spread(5.3) / (k > 1 ? k : 1));
    }

    private static HospitalCohort GenerateHospital(CohortOptions o, int index)
    {
        var profile = Profile(o, index);
        var rng = new Random(unchecked(o.Seed * 1_000_003 + index * 7919 + 17));
        var size = Math.Max(1, (int)Math.Round(o.PatientsPerHospital * profile.SizeFactor));
        var name = $"hospital-{index + 1:D2}";
        var patients = new PatientRecord[size];
        for (var p = 0; p < size; p++)
            patients[p] = GeneratePatient(o, profile, rng, $"{name}-p{p + 1:D6}", name);
        return new HospitalCohort(name, profile, patients);
    }

    private static PatientRecord GeneratePatient(CohortOptions o, HospitalProfile h, Random rng, string id, string site)
    {
        var age = Math.Clamp(h.MeanAge + 12 * Normal(rng), 18, 95);
        var male = rng.NextDouble() < 0.5 ? 1 : 0;
        var u = rng.NextDouble();
        var smoking = u < 0.55 ? 0 : u < 0.8 ? 1 : 2;
        var pHtn = Sigmoid(-1.2 + 0.06 * (age - 55));
        var htn = rng.NextDouble() < pHtn ? 1 : 0;
        var pDm = Sigmoid(-2.0 + 0.04 * (age - 55));
        var dm = rng.NextDouble() < pDm ? 1 : 0;

        // Baselines: wide between-patient spread.
        var bmi0 = 27 + 2.5 * dm + 4.5 * Normal(rng);
        var sbp0 = 112 + 0.45 * (age - 40) + 12 * htn + 17 * Normal(rng);
        var a1c0 = 5.4 + 1.6 * dm + 0.03 * (bmi0 - 27) + 0.8 * Normal(rng);
        var chol0 = 195 + 0.4 * (age - 50) + 32 * Normal(rng);
        var hr0 = 71 + 3 * (smoking == 2 ? 1 : 0) + 8 * Normal(rng);

        // Trajectory: slopes per visit and visit-to-visit variability (the signal).
        var deterioration = Normal(rng);
        var a1cSlope = 0.1 * (0.8 * deterioration + 0.6 * Normal(rng));
        var sbpSlope = 2.5 * (0.6 * deterioration + 0.8 * Normal(rng));
        var bmiSlope = 0.15 * Normal(rng);
        var sbpVariability = Math.Exp(Math.Log(5) + 0.5 * Normal(rng));

        var visits = o.Visits - rng.Next(0, o.Visits / 2 + 1);
        visits = Math.Max(2, visits);
        // Deterioration starts at an onset visit; before it the patient is stable. The outcome depends on
        // the accumulated change since onset, which a mean over visits (or the last visit alone) cannot recover.
        var onset = rng.Next(0, visits - 1);
        var rows = new double[visits][];
        var sbpResidualSq = 0.0;
        for (var t = 0; t < visits; t++)
        {
            var since = Math.Max(0, t - onset);
            var bmi = bmi0 + bmiSlope * t + 0.3 * Normal(rng);
            var sbpNoise = sbpVariability * Normal(rng);
            sbpResidualSq += sbpNoise * sbpNoise;
            var sbp = sbp0 + sbpSlope * since + sbpNoise;
            var dbp = 0.45 * sbp + 18 + 5 * Normal(rng);
            var a1c = a1c0 + a1cSlope * since + 0.1 * Normal(rng);
            // ADAG relation between HbA1c and estimated average glucose: eAG = 28.7 * A1c - 46.7 mg/dL.
            var glucose = 28.7 * a1c - 46.7 + 14 * Normal(rng);
            var chol = chol0 + 6 * Normal(rng);
            var hr = hr0 + 0.08 * (sbp - sbp0) + 4 * Normal(rng);

            // Measurement bias of the hospital's instruments.
            sbp += h.SystolicBias;
            glucose *= 1 + h.GlucoseBias;

            var row = new[]
            {
                Math.Round(bmi, 1), Math.Round(sbp), Math.Round(dbp), Math.Round(glucose), Math.Round(a1c, 1),
                Math.Round(chol), Math.Round(hr),
            };
            for (var j = 0; j < row.Length; j++)
            {
                var r = rng.NextDouble();
                if (r < o.MissingRate) row[j] = double.NaN;
                else if (r < o.MissingRate + o.OutlierRate) row[j] = Math.Round(row[j] * (rng.NextDouble() < 0.5 ? 3.0 : 0.3), 1);
            }
            rows[t] = row;
        }

        var span = visits - 1 - onset;
        var a1cChange = a1cSlope * span;                   // sd about 0.09 * 3.5 = 0.3
        var sbpChange = sbpSlope * span;                   // sd about 8
        var variabilityZ = (Math.Sqrt(sbpResidualSq / visits) - 5.3) / 2.7;
        var logit = -1.8 + h.PrevalenceShift
            + 2.6 * (a1cChange / 0.3) + 1.6 * (sbpChange / 8) + 0.8 * variabilityZ
            + 0.25 * (age - 55) / 12 + 0.3 * (smoking == 2 ? 1 : 0) + 0.2 * dm;
        var label = rng.NextDouble() < Sigmoid(logit) ? 1 : 0;

        var smokingValue = rng.NextDouble() < o.MissingRate ? double.NaN : smoking;
        var staticValues = new double[] { Math.Round(age), male, smokingValue, htn, dm };
        return new PatientRecord(id, site, staticValues, rows, label);
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>Standard normal by Box-Muller (one value per call; deterministic for a seeded Random).</summary>
    private static double Normal(Random rng)
    {
        var u1 = 1.0 - rng.NextDouble();
        var u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
