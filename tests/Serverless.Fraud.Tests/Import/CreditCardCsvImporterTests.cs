using Serverless.Fraud.Import;

namespace Serverless.Fraud.Tests.Import;

public sealed class CreditCardCsvImporterTests
{
    private static string Header(bool quoted = true) =>
        string.Join(',', CreditCardCsvImporter.Columns.Select(c => quoted ? $"\"{c}\"" : c));

    private static string Row(double time, double amount, string cls, int seed)
    {
        var r = new Random(seed);
        var v = Enumerable.Range(0, 28).Select(_ => (r.NextDouble() * 4 - 2).ToString("R", System.Globalization.CultureInfo.InvariantCulture));
        return $"{time},{string.Join(',', v)},{amount.ToString(System.Globalization.CultureInfo.InvariantCulture)},\"{cls}\"";
    }

    [Fact]
    public void Reads_a_sample_in_the_published_schema()
    {
        // Written in the form of the Kaggle file: quoted header names, quoted class, plain numbers.
        var csv = string.Join('\n', Header(), Row(0, 149.62, "0", 1), Row(0, 2.69, "0", 2), Row(406, 0, "1", 3), Row(172792, 217, "0", 4)) + "\n";
        var result = CreditCardCsvImporter.Read(new StringReader(csv));
        Assert.True(result.Succeeded, string.Join("; ", result.Errors));
        Assert.Equal(4, result.Records.Count);
        Assert.Equal(149.62, result.Records[0].Amount);
        Assert.True(result.Records[2].IsFraud);
        Assert.Equal(172792, result.Records[3].TimeSeconds);
        Assert.Equal(28, result.Records[1].Components.Length);

        var data = CreditCardFeatures.ToDataset(result.Records);
        Assert.Equal(4, data.Count);
        Assert.Equal(1, data.Steps);
        Assert.Equal(CreditCardFeatures.Count, data.Features);
        Assert.Equal([0, 0, 1, 0], data.Labels);
    }

    [Fact]
    public void Columns_may_come_in_any_order_unquoted()
    {
        var cols = CreditCardCsvImporter.Columns.Reverse().ToArray();
        var values = cols.Select(c => c == "Class" ? "1" : c == "Amount" ? "12.5" : c == "Time" ? "10" : "0.5");
        var result = CreditCardCsvImporter.Read(new StringReader(string.Join(',', cols) + "\n" + string.Join(',', values) + "\n"));
        Assert.True(result.Succeeded, string.Join("; ", result.Errors));
        Assert.Equal(12.5, result.Records[0].Amount);
        Assert.Equal(10, result.Records[0].TimeSeconds);
        Assert.True(result.Records[0].IsFraud);
    }

    [Fact]
    public void Header_errors_name_the_column()
    {
        var header = Header(quoted: false).Replace(",V7,", ",V7,V7,").Replace("Amount,", "Amt,");
        var result = CreditCardCsvImporter.Read(new StringReader(header + "\n"));
        Assert.Contains(result.Errors, e => e.Row == 1 && e.Column == "V7" && e.Message.Contains("twice"));
        Assert.Contains(result.Errors, e => e.Row == 1 && e.Column == "Amt" && e.Message.Contains("unknown"));
        Assert.Contains(result.Errors, e => e.Row == 1 && e.Column == "Amount" && e.Message.Contains("missing"));
        Assert.Empty(result.Records);

        var empty = CreditCardCsvImporter.Read(new StringReader(""));
        Assert.Single(empty.Errors);
        Assert.Equal(1, empty.Errors[0].Row);
    }

    [Fact]
    public void Row_errors_name_row_and_column_and_keep_good_rows()
    {
        var good = Row(1, 5, "0", 1);
        var lines = new[]
        {
            Header(),
            good,                                           // line 2
            Row(2, -3, "0", 2),                             // 3: negative amount
            Row(3, 5, "2", 3),                              // 4: class not 0/1
            good.Replace("1,", "abc,"),                     // 5: Time not a number (first field)
            string.Join(',', good.Split(',').Take(30)),     // 6: too few fields
            Row(4, 5, "", 4),                               // 7: empty class
            good.Replace(good.Split(',')[5], "NaN"),       // 8: V5 not finite
            Row(5, 7, "1", 5),                              // 9: good
        };
        var result = CreditCardCsvImporter.Read(new StringReader(string.Join('\n', lines) + "\n"), "sample.csv");
        Assert.Equal(2, result.Records.Count);
        Assert.Equal([3, 4, 5, 6, 7, 8], result.RejectedRows);
        Assert.Contains(result.Errors, e => e is { File: "sample.csv", Row: 3, Column: "Amount" });
        Assert.Contains(result.Errors, e => e is { Row: 4, Column: "Class" });
        Assert.Contains(result.Errors, e => e is { Row: 5, Column: "Time" });
        Assert.Contains(result.Errors, e => e is { Row: 6, Column: "*" } && e.Message.Contains("30 fields"));
        Assert.Contains(result.Errors, e => e is { Row: 7, Column: "Class" } && e.Message.Contains("empty"));
        Assert.Contains(result.Errors, e => e is { Row: 8, Column: "V5" });
    }

    [Fact]
    public void A_card_number_in_a_bad_cell_or_header_is_never_echoed()
    {
        const string pan = "4111111111111111";
        var bad = Row(1, 5, "0", 1).Split(',');
        bad[3] = pan + "x";
        var header = Header(quoted: false) + "," + pan;
        var r1 = CreditCardCsvImporter.Read(new StringReader(Header() + "\n" + string.Join(',', bad) + "\n"));
        var r2 = CreditCardCsvImporter.Read(new StringReader(header + "\n"));
        Assert.NotEmpty(r1.Errors);
        Assert.NotEmpty(r2.Errors);
        foreach (var e in r1.Errors.Concat(r2.Errors)) Assert.DoesNotContain("411111", e.ToString());
    }
}
