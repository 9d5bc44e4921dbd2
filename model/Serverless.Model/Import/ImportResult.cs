using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;

namespace Serverless.Model.Import;

/// <summary>One problem in an input file. <see cref="Row"/> is the 1-based line (CSV, header = 1) or bundle entry (FHIR).</summary>
public sealed record ImportError(string File, int Row, string Column, string Message)
{
    public override string ToString() => $"{File}:{Row}:{Column}: {Message}";
}

/// <summary>
/// The imported patients and every problem found. A patient with any error is left out of
/// <see cref="Cohort"/> and listed in <see cref="RejectedPatients"/>: bad data is reported, never silently
/// dropped or guessed.
/// </summary>
public sealed record ImportResult(PatientCohort Cohort, IReadOnlyList<ImportError> Errors, IReadOnlyList<string> RejectedPatients)
{
    public bool Succeeded => Errors.Count == 0;
}

/// <summary>Shared parsing helpers of the importers.</summary>
internal static class ImportParsing
{
    public static CsvParser OpenCsv(TextReader reader, string file, List<ImportError> errors)
    {
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            HasHeaderRecord = true,
            DetectColumnCountChanges = false,
            TrimOptions = TrimOptions.Trim,
            BadDataFound = args => errors.Add(new ImportError(file, args.Context.Parser?.RawRow ?? 0, "*", "malformed CSV field (stray quote)")),
        };
        return new CsvParser(reader, config);
    }

    /// <summary>Maps header names (case-insensitive, trimmed) to positions; reports missing, duplicate and unknown columns.</summary>
    public static Dictionary<string, int>? ReadHeader(CsvParser parser, string file, IReadOnlyList<string> required, IReadOnlyList<string> optional, List<ImportError> errors)
    {
        if (!parser.Read() || parser.Record is null)
        {
            errors.Add(new ImportError(file, 1, "*", "file is empty: expected a header row"));
            return null;
        }
        var header = parser.Record;
        var map = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var known = new HashSet<string>(required.Concat(optional), StringComparer.OrdinalIgnoreCase);
        var ok = true;
        for (var i = 0; i < header.Length; i++)
        {
            var name = header[i].Trim().TrimStart('\uFEFF');
            if (!known.Contains(name)) { errors.Add(new ImportError(file, 1, name, "unknown column")); ok = false; continue; }
            if (!map.TryAdd(name, i)) { errors.Add(new ImportError(file, 1, name, "column appears twice")); ok = false; }
        }
        foreach (var r in required)
            if (!map.ContainsKey(r)) { errors.Add(new ImportError(file, 1, r, "required column is missing")); ok = false; }
        return ok ? map : null;
    }

    /// <summary>A finite number within [min, max]; empty means missing (NaN) when allowed.</summary>
    public static bool TryNumber(string raw, double min, double max, bool allowMissing, string file, int row, string column, List<ImportError> errors, out double value)
    {
        value = double.NaN;
        if (string.IsNullOrWhiteSpace(raw))
        {
            if (allowMissing) return true;
            errors.Add(new ImportError(file, row, column, "value is required"));
            return false;
        }
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
        {
            errors.Add(new ImportError(file, row, column, "the value is not a number"));
            return false;
        }
        if (v < min || v > max)
        {
            errors.Add(new ImportError(file, row, column, $"the value is outside the plausible range {min.ToString(CultureInfo.InvariantCulture)}..{max.ToString(CultureInfo.InvariantCulture)}"));
            return false;
        }
        value = v;
        return true;
    }

    /// <summary>Index of <paramref name="raw"/> in <paramref name="categories"/> (case-insensitive); empty means missing when allowed.</summary>
    public static bool TryCategory(string raw, IReadOnlyList<string> categories, bool allowMissing, string file, int row, string column, List<ImportError> errors, out double value)
    {
        value = double.NaN;
        var s = raw.Trim();
        if (s.Length == 0)
        {
            if (allowMissing) return true;
            errors.Add(new ImportError(file, row, column, "value is required"));
            return false;
        }
        for (var i = 0; i < categories.Count; i++)
            if (string.Equals(categories[i], s, StringComparison.OrdinalIgnoreCase)) { value = i; return true; }
        errors.Add(new ImportError(file, row, column, $"the value is not one of {string.Join(", ", categories)}"));
        return false;
    }
}
