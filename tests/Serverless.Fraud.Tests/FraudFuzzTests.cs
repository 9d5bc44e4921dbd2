using System.Globalization;
using System.Text;
using Serverless.Fraud.Import;
using Serverless.Fraud.Tokenization;
using Xunit.Abstractions;

namespace Serverless.Fraud.Tests;

/// <summary>
/// The fraud model's loaders of outside bytes: the Kaggle/ULB <c>creditcard.csv</c> importer, which
/// documents no exception for bad data (every problem is an ImportError in the result, so any
/// exception fails), and card tokens as they come back in requests (<see cref="CardToken.Parse"/>,
/// <see cref="FormatException"/>). Fraud models are saved and loaded as ONNX, fuzzed in
/// <see cref="ModelFuzzTests.Onnx_import"/>.
/// </summary>
public sealed class FraudFuzzTests(ITestOutputHelper output)
{
    private static string CreditCardSample()
    {
        var random = new Random(3);
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(',', CreditCardCsvImporter.Columns.Select(c => c == "Amount" ? "\"Amount\"" : c)));
        for (var row = 0; row < 4; row++)
        {
            var fields = new List<string> { (row * 17.0).ToString(CultureInfo.InvariantCulture) };
            for (var i = 0; i < 28; i++) fields.Add((random.NextDouble() * 4 - 2).ToString("R", CultureInfo.InvariantCulture));
            fields.Add((random.NextDouble() * 300).ToString("0.00", CultureInfo.InvariantCulture));
            fields.Add(row == 2 ? "\"1\"" : "0");
            sb.AppendLine(string.Join(',', fields));
        }
        return sb.ToString();
    }

    [Fact]
    public void Credit_card_csv()
    {
        var sample = Encoding.UTF8.GetBytes(CreditCardSample());
        // 64 × input + 1 MiB, as the cohort importers: CsvHelper's field strings and row arrays (UTF-16,
        // 2 × and a copy), 28 floats per row, one error record per bad cell; the intercept is the
        // parser's buffers and configuration.
        var spec = new LoaderSpec("credit card csv", [], BytesPerInputByte: 64, FixedBytes: 1 << 20);
        Fuzzer.Run(spec, [sample], b =>
        {
            using var reader = new StreamReader(new MemoryStream(b), Encoding.UTF8);
            var result = CreditCardCsvImporter.Read(reader);
            // A row is rejected once, and only with an error that names its line.
            Assert.Equal(result.RejectedRows.Count, result.RejectedRows.Distinct().Count());
            Assert.All(result.RejectedRows, row => Assert.Contains(result.Errors, e => e.Row == row));
        }, output, text: true);
    }

    [Fact]
    public void Card_token()
    {
        byte[][] samples = [Encoding.UTF8.GetBytes(new CardToken(UInt128.MaxValue / 3).ToString()), Encoding.UTF8.GetBytes(new CardToken(42).ToString())];
        // 8 × input + 4 KiB: the UTF-16 string (2 ×) and an exception message.
        var spec = new LoaderSpec("card token", [typeof(FormatException)], 8, 4 << 10);
        Fuzzer.Run(spec, samples, b =>
        {
            var token = CardToken.Parse(Encoding.UTF8.GetString(b));
            Assert.Equal(token, CardToken.Parse(token.ToString())); // a parsed token round-trips
        }, output, text: true);
    }
}
