using System.Globalization;
using CsvHelper;
using CsvHelper.Configuration;
using Serverless.Model.Import;

namespace Serverless.Fraud.Import;

/// <summary>
/// One row of the ULB Machine Learning Group's "Credit Card Fraud Detection" data set (Dal Pozzolo et al.
/// 2015; published on Kaggle as <c>creditcard.csv</c>, 284,807 European card transactions of September
/// 2013): seconds since the first transaction, 28 PCA components V1..V28, the amount, and the label.
/// </summary>
public sealed record CreditCardRecord(double TimeSeconds, float[] Components, double Amount, bool IsFraud)
{
    public const int ComponentCount = 28;
}

/// <summary>The imported rows and every problem found; a row with any error is left out and its line listed.</summary>
public sealed record CreditCardImportResult(IReadOnlyList<CreditCardRecord> Records, IReadOnlyList<ImportError> Errors, IReadOnlyList<int> RejectedRows)
{
    public bool Succeeded => Errors.Count == 0;
}

/// <summary>
/// Reads the <c>creditcard.csv</c> schema: header <c>Time,V1..V28,Amount,Class</c> (names quoted or not,
/// any order, case-insensitive), one transaction per row. Checks the header (missing, duplicate and
/// unknown columns), the field count of each row, that every number parses (invariant culture) and is
/// finite, Time and Amount non-negative, Class exactly 0 or 1. Errors carry the 1-based line (header = 1)
/// and the column, never guess, and never drop a row silently. The data set has no card numbers (the
/// PCA hides them), so nothing here needs tokenizing.
/// </summary>
public static class CreditCardCsvImporter
{
    public const string TimeColumn = "Time";
    public const string AmountColumn = "Amount";
    public const string ClassColumn = "Class";

    /// <summary>The 31 columns in the published order.</summary>
    public static IReadOnlyList<string> Columns { get; } =
        [TimeColumn, .. Enumerable.Range(1, CreditCardRecord.ComponentCount).Select(i => $"V{i}"), AmountColumn, ClassColumn];

    public static CreditCardImportResult ReadFile(string path)
    {
        using var reader = new StreamReader(path);
        return Read(reader, Path.GetFileName(path));
    }

    public static CreditCardImportResult Read(TextReader reader, string file = "creditcard.csv")
    {
        ArgumentNullException.ThrowIfNull(reader);
        var errors = new List<ImportError>();
        var records = new List<CreditCardRecord>();
        var rejected = new List<int>();
        var config = new CsvConfiguration(CultureInfo.InvariantCulture)
        {
            HasHeaderRecord = true,
            DetectColumnCountChanges = false,
            TrimOptions = TrimOptions.Trim,
            BadDataFound = args => errors.Add(new ImportError(file, args.Context.Parser?.RawRow ?? 0, "*", "malformed CSV field (stray quote)")),
        };
        using var parser = new CsvParser(reader, config);
        if (!parser.Read() || parser.Record is null)
        {
            errors.Add(new ImportError(file, 1, "*", "file is empty: expected the header Time,V1..V28,Amount,Class"));
            return new CreditCardImportResult(records, errors, rejected);
        }
        var positions = ReadHeader(parser.Record, file, errors);
        if (positions is null) return new CreditCardImportResult(records, errors, rejected);
        var width = parser.Record.Length;

        while (parser.Read())
        {
            var row = parser.RawRow;
            var fields = parser.Record!;
            var before = errors.Count;
            if (fields.Length == 1 && fields[0].Length == 0) continue; // blank line
            if (fields.Length != width)
            {
                errors.Add(new ImportError(file, row, "*", $"row has {fields.Length} fields, the header {width}"));
                rejected.Add(row);
                continue;
            }
            var time = Number(fields, positions[0], TimeColumn, row, file, errors, nonNegative: true);
            var components = new float[CreditCardRecord.ComponentCount];
            for (var i = 0; i < components.Length; i++)
            {
                var v = Number(fields, positions[1 + i], Columns[1 + i], row, file, errors, nonNegative: false);
                if (Math.Abs(v) > float.MaxValue)
                {
                    errors.Add(new ImportError(file, row, Columns[1 + i], "value outside the single-precision range"));
                    continue;
                }
                components[i] = (float)v;
            }
            var amount = Number(fields, positions[29], AmountColumn, row, file, errors, nonNegative: true);
            var label = fields[positions[30]].Trim().Trim('"');
            bool isFraud = false;
            if (label == "0") isFraud = false;
            else if (label == "1") isFraud = true;
            else errors.Add(new ImportError(file, row, ClassColumn, label.Length == 0 ? "required value is empty" : "must be 0 (legitimate) or 1 (fraud)"));
            if (errors.Count != before) { rejected.Add(row); continue; }
            records.Add(new CreditCardRecord(time, components, amount, isFraud));
        }
        return new CreditCardImportResult(records, errors, rejected);
    }

    private static int[]? ReadHeader(string[] header, string file, List<ImportError> errors)
    {
        var map = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        var ok = true;
        for (var i = 0; i < header.Length; i++)
        {
            var name = header[i].Trim().TrimStart('\uFEFF').Trim('"');
            if (!Columns.Contains(name, StringComparer.OrdinalIgnoreCase)) { errors.Add(new ImportError(file, 1, Shorten(name), "unknown column")); ok = false; continue; }
            if (!map.TryAdd(name, i)) { errors.Add(new ImportError(file, 1, name, "column appears twice")); ok = false; }
        }
        foreach (var c in Columns)
            if (!map.ContainsKey(c)) { errors.Add(new ImportError(file, 1, c, "required column is missing")); ok = false; }
        if (!ok) return null;
        var positions = new int[Columns.Count];
        for (var i = 0; i < positions.Length; i++) positions[i] = map[Columns[i]];
        return positions;
    }

    private static double Number(string[] fields, int position, string column, int row, string file, List<ImportError> errors, bool nonNegative)
    {
        var text = fields[position].Trim().Trim('"');
        if (text.Length == 0) { errors.Add(new ImportError(file, row, column, "required value is empty")); return 0; }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
        {
            // The value is not echoed: in a mislabelled file a column could hold anything, a card number included.
            errors.Add(new ImportError(file, row, column, "not a number"));
            return 0;
        }
        if (!double.IsFinite(v)) { errors.Add(new ImportError(file, row, column, "not a finite number")); return 0; }
        if (nonNegative && v < 0) { errors.Add(new ImportError(file, row, column, "must not be negative")); return 0; }
        return v;
    }

    private static string Shorten(string s) { s = Redaction.Digits(s); return s.Length <= 24 ? s : s[..24] + "..."; }
}

/// <summary>Model inputs from imported rows: one step per transaction (the data set has no card key to build sequences).</summary>
public static class CreditCardFeatures
{
    /// <summary>V1..V28 as published (already centred PCA scores), log amount, and time of day (sin, cos).</summary>
    public const int Count = CreditCardRecord.ComponentCount + 3;

    public static Serverless.Model.Data.SequenceDataset ToDataset(IReadOnlyList<CreditCardRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var values = new float[records.Count * Count];
        var mask = new float[records.Count];
        var labels = new int[records.Count];
        for (var i = 0; i < records.Count; i++)
        {
            var r = records[i];
            var row = values.AsSpan(i * Count, Count);
            r.Components.CopyTo(row);
            row[28] = (float)((Math.Log(1 + r.Amount) - 3) / 2);
            var day = r.TimeSeconds % 86_400 / 86_400 * 2 * Math.PI;
            row[29] = (float)Math.Sin(day);
            row[30] = (float)Math.Cos(day);
            mask[i] = 1;
            labels[i] = r.IsFraud ? 1 : 0;
        }
        return new Serverless.Model.Data.SequenceDataset(records.Count, 1, Count, 2, values, mask, labels);
    }
}
