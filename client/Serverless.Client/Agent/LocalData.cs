using Serverless.Model.Data;
using Serverless.Model.Import;
using Serverless.Model.Preprocessing;

namespace Serverless.Client.Agent;

/// <summary>The formats a hospital's records can be read from (the model's importers).</summary>
internal enum LocalDataFormat
{
    /// <summary>Cohort CSV, one row per visit (what <c>model generate</c> writes).</summary>
    Csv,

    /// <summary>The Kaggle "healthcare-dataset" CSV schema (direct identifiers pseudonymized on import).</summary>
    Kaggle,

    /// <summary>FHIR R4 bundles (Patient, Observation, Condition).</summary>
    Fhir,
}

/// <summary>
/// Loads a hospital's own records through the model's importers. The records stay in this process:
/// the agent derives statistics sums and model updates from them and sends only those.
/// </summary>
internal static class LocalData
{
    /// <summary>Parses "csv" | "kaggle" | "fhir".</summary>
    public static LocalDataFormat ParseFormat(string value) => value.ToLowerInvariant() switch
    {
        "csv" => LocalDataFormat.Csv,
        "kaggle" => LocalDataFormat.Kaggle,
        "fhir" => LocalDataFormat.Fhir,
        _ => throw new ArgumentException($"unknown data format '{value}' (csv, kaggle or fhir)"),
    };

    /// <summary>
    /// Reads every file (directories: every *.csv / *.json in name order). Any import error fails the
    /// load with the first error and the count: an agent never trains on data it could not validate.
    /// </summary>
    /// <exception cref="FileNotFoundException">a path does not exist.</exception>
    /// <exception cref="InvalidDataException">no files, an import error, or no valid patients.</exception>
    public static PatientCohort Load(LocalDataFormat format, IReadOnlyList<string> paths, byte[]? pseudonymKey = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var pattern = format == LocalDataFormat.Fhir ? "*.json" : "*.csv";
        var files = new List<string>();
        foreach (var p in paths)
        {
            if (Directory.Exists(p)) files.AddRange(Directory.GetFiles(p, pattern).Order(StringComparer.Ordinal));
            else if (File.Exists(p)) files.Add(p);
            else throw new FileNotFoundException($"no such data file or directory: {p}");
        }
        if (files.Count == 0) throw new InvalidDataException($"no {pattern} files in {string.Join(", ", paths)}");

        // Kaggle and FHIR carry direct identifiers: they are replaced by keyed pseudonyms on import.
        var key = format == LocalDataFormat.Csv ? null : pseudonymKey ?? RandomNumberGenerator.GetBytes(Pseudonymizer.MinimumKeyBytes);
        using var pseudonymizer = key is null ? null : new Pseudonymizer(key);
        var results = files.Select(f => format switch
        {
            LocalDataFormat.Kaggle => KaggleHealthcareImporter.Read(f, pseudonymizer!),
            LocalDataFormat.Fhir => FhirBundleImporter.Read(f, pseudonymizer!),
            _ => CohortCsv.Read(f),
        }).ToList();
        var errors = results.SelectMany(r => r.Errors).ToList();
        if (errors.Count > 0) throw new InvalidDataException($"{errors.Count} import error(s) in the local data, first: {errors[0]}");
        var patients = results.SelectMany(r => r.Cohort.Patients).ToList();
        if (patients.Count == 0) throw new InvalidDataException("no valid patients in the local data");
        return new PatientCohort(results[0].Cohort.Schema, patients);
    }
}
