using Serverless.Model.Import;
using Serverless.Model.Preprocessing;

namespace Serverless.Model.Tests.Import;

public sealed class KaggleHealthcareImporterTests
{
    private const string Header = "Name,Age,Gender,Blood Type,Medical Condition,Date of Admission,Doctor,Hospital,Insurance Provider,Billing Amount,Room Number,Admission Type,Discharge Date,Medication,Test Results";

    // Rows in the public dataset's style: mixed-case names, negative billing exists, dates yyyy-MM-dd.
    private const string A2 = "Bobby JacksOn,31,Male,B-,Cancer,2024-01-31,Matthew Smith,Sons and Miller,Blue Cross,18856.28,328,Urgent,2024-02-02,Paracetamol,Normal";
    private const string B1 = "LesLie TErRy,62,Male,A+,Obesity,2019-08-20,Samantha Davies,Kim Inc,Medicare,33643.33,265,Emergency,2019-08-26,Ibuprofen,Inconclusive";
    private const string A1 = "bobby jackson,30,Male,B-,Diabetes,2023-03-10,Jane Doe,Sons and Miller,Aetna,-502.5,101,Elective,2023-03-12,Lipitor,Abnormal";
    private const string C1 = "Danny Smith,76,Female,A-,Obesity,2022-09-22,Tiffany Mitchell,Cook PLC,Aetna,27955.10,205,Emergency,2022-10-07,Aspirin,Abnormal";

    private static Pseudonymizer Key(byte fill = 7) => new(Enumerable.Repeat(fill, 32).ToArray());

    private static ImportResult Read(params string[] rows)
    {
        using var key = Key();
        return KaggleHealthcareImporter.Read(new StringReader(string.Join('\n', [Header, .. rows])), "healthcare.csv", key);
    }

    [Fact]
    public void Admissions_group_per_patient_in_date_order_and_the_last_test_result_is_the_label()
    {
        var r = Read(A2, B1, A1, C1);
        Assert.Empty(r.Errors);
        Assert.Equal(3, r.Cohort.Patients.Count);
        var bobby = r.Cohort.Patients[0];
        Assert.Equal(2, bobby.Visits.Count);
        Assert.Equal(30, bobby.Visits[0][0]);                 // 2023 admission first (sorted by date, not file order)
        Assert.Equal(-502.5, bobby.Visits[0][5]);              // negative billing kept
        Assert.Equal(2, bobby.Visits[0][6]);                   // length of stay in days
        Assert.Equal(0, bobby.Label);                          // last admission (2024): Normal
        Assert.Equal(2, r.Cohort.Patients[1].Label);           // Inconclusive
        Assert.Equal(1, r.Cohort.Patients[2].Label);           // Abnormal
        Assert.Equal(3, r.Cohort.Schema.Classes);
    }

    [Fact]
    public void Direct_identifiers_never_reach_the_records_and_pseudonyms_depend_on_the_key()
    {
        var r = Read(A2, B1);
        foreach (var p in r.Cohort.Patients)
        {
            Assert.StartsWith("p_", p.PatientId);
            Assert.DoesNotContain("bobby", p.PatientId, StringComparison.OrdinalIgnoreCase);
        }
        using var other = Key(9);
        var r2 = KaggleHealthcareImporter.Read(new StringReader(string.Join('\n', Header, A2)), "x.csv", other);
        Assert.NotEqual(r.Cohort.Patients[0].PatientId, r2.Cohort.Patients[0].PatientId);
    }

    public static TheoryData<string, string, string> BadRows() => new()
    {
        { A2.Replace("2024-01-31", "31/01/2024"), "Date of Admission", "not a date" },
        { A2.Replace("2024-02-02", "2024-01-01"), "Discharge Date", "before the admission date" },
        { A2.Replace("Cancer", "Flu"), "Medical Condition", "not one of" },
        { A2.Replace(",31,", ",31.5,"), "Age", "whole number" },
        { A2.Replace(",31,", ",231,"), "Age", "plausible range" },
        { A2.Replace(",328,", ",3B,"), "Room Number", "room number" },
        { A2.Replace(",Normal", ",Positive"), "Test Results", "not one of" },
        { A2.Replace("18856.28", "lots"), "Billing Amount", "not a number" },
        { A2.Replace(",B-,", ",Z+,"), "Blood Type", "not one of" },
        { A2.Replace("Matthew Smith", ""), "Doctor", "required" },
        { A2 + ",extra", "*", "fields" },
    };

    [Theory]
    [MemberData(nameof(BadRows))]
    public void Each_kind_of_bad_row_is_reported_with_row_and_column(string bad, string column, string message)
    {
        var r = Read(B1, bad, C1);
        var e = Assert.Single(r.Errors);
        Assert.Equal(("healthcare.csv", 3, column), (e.File, e.Row, e.Column));
        Assert.Contains(message, e.Message);
        Assert.Equal(2, r.Cohort.Patients.Count);                  // the good patients stay
        if (column != "*") Assert.Single(r.RejectedPatients);      // the bad one is listed
    }

    [Fact]
    public void A_missing_column_is_reported_in_the_header()
    {
        using var key = Key();
        var r = KaggleHealthcareImporter.Read(new StringReader(Header.Replace(",Test Results", "") + "\n"), "h.csv", key);
        Assert.Contains(r.Errors, e => e.Row == 1 && e.Column == "Test Results");
    }
}
