using Serverless.Model.Data;
using Serverless.Model.Import;

namespace Serverless.Model.Tests.Import;

public sealed class CohortCsvTests
{
    private static GeneratedCohort Small() => CohortGenerator.Generate(new CohortOptions { Hospitals = 2, PatientsPerHospital = 30, Visits = 5, Seed = 21, MissingRate = 0.1 });

    internal static void AssertSamePatients(IReadOnlyList<PatientRecord> expected, IReadOnlyList<PatientRecord> actual, bool compareIds = true)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            var e = expected[i];
            var a = actual[i];
            if (compareIds) Assert.Equal(e.PatientId, a.PatientId);
            Assert.Equal(e.Static, a.Static);   // NaN equals NaN for double arrays
            Assert.Equal(e.Label, a.Label);
            Assert.Equal(e.Visits.Count, a.Visits.Count);
            for (var t = 0; t < e.Visits.Count; t++) Assert.Equal(e.Visits[t], a.Visits[t]);
        }
    }

    [Fact]
    public void Written_cohort_reads_back_identically_including_missing_values()
    {
        var cohort = Small();
        foreach (var h in cohort.Hospitals)
        {
            var sw = new StringWriter();
            CohortCsv.Write(h.Patients, sw);
            var result = CohortCsv.Read(new StringReader(sw.ToString()), "h.csv");
            Assert.Empty(result.Errors);
            Assert.Empty(result.RejectedPatients);
            AssertSamePatients(h.Patients, result.Cohort.Patients);
            Assert.All(result.Cohort.Patients, p => Assert.Equal(h.Hospital, p.Site));
        }
        Assert.Contains(cohort.All().Patients, p => p.Visits.Any(v => v.Any(double.IsNaN)));
    }

    private static string Csv(params string[] rows) => string.Join('\n', [string.Join(',', CohortCsv.Columns), .. rows]) + "\n";

    private const string Good1 = "h1,p1,1,60,male,never,0,1,27.5,130,80,100,5.6,190,70,0";
    private const string Good2 = "h1,p1,2,60,male,never,0,1,27.9,135,82,104,5.8,192,72,0";
    private const string Other = "h1,p2,1,50,female,,1,0,24,,75,95,5.2,180,65,1";

    [Fact]
    public void A_valid_file_with_an_empty_optional_cell_imports_every_patient()
    {
        var r = CohortCsv.Read(new StringReader(Csv(Good1, Good2, Other)), "f.csv");
        Assert.Empty(r.Errors);
        Assert.Equal(2, r.Cohort.Patients.Count);
        var p2 = r.Cohort.Patients[1];
        Assert.True(double.IsNaN(p2.Static[2]));      // smoking missing
        Assert.True(double.IsNaN(p2.Visits[0][1]));   // systolic missing
        Assert.Equal(1, p2.Label);
        Assert.Equal(2, r.Cohort.Patients[0].Visits.Count);
    }

    public static TheoryData<string, int, string, string> BadRows() => new()
    {
        // rows: header=1, Good1=2, bad row=3
        { "h1,p1,2,60,male,never,0,1,abc,135,82,104,5.8,192,72,0", 3, "bmi", "not a number" },
        { "h1,p1,2,60,male,never,0,1,27,135,82,104,5.8,192,99999,0", 3, "heart_rate", "plausible range" },
        { "h1,p1,2,60,unknown,never,0,1,27,135,82,104,5.8,192,72,0", 3, "sex", "not one of" },
        { "h1,p1,2,,male,never,0,1,27,135,82,104,5.8,192,72,0", 3, "age", "required" },
        { "h1,p1,2,60,male,never,0,1,27,135,82,104,5.8,192,72", 3, "*", "fields" },
        { "h1,p1,3,60,male,never,0,1,27,135,82,104,5.8,192,72,0", 3, "visit", "consecutive" },
        { "h1,p1,x,60,male,never,0,1,27,135,82,104,5.8,192,72,0", 3, "visit", "visit number" },
        { "h1,p1,2,61,male,never,0,1,27,135,82,104,5.8,192,72,0", 3, "age", "differs from the patient's first row" },
        { "h1,p1,2,60,male,never,0,1,27,135,82,104,5.8,192,72,1", 3, "outcome", "differs from the patient's first row" },
        { "h1,p1,2,60,male,never,2,1,27,135,82,104,5.8,192,72,0", 3, "hypertension", "not one of" },
        { "h1,,2,60,male,never,0,1,27,135,82,104,5.8,192,72,0", 3, "patient_id", "required" },
        { "h1,p1,2,60,male,never,0,1,27,\"13\"5,82,104,5.8,192,72,0", 3, "*", "malformed" },
    };

    [Theory]
    [MemberData(nameof(BadRows))]
    public void Each_kind_of_bad_row_is_reported_with_file_row_and_column_and_its_patient_rejected(string bad, int row, string column, string message)
    {
        var r = CohortCsv.Read(new StringReader(Csv(Good1, bad, Other)), "bad.csv");
        var e = Assert.Single(r.Errors, x => x.Column == column && x.Message.Contains(message));
        Assert.Equal("bad.csv", e.File);
        Assert.Equal(row, e.Row);
        // The other patient is still imported; the bad one is listed, not silently dropped.
        Assert.Contains(r.Cohort.Patients, p => p.PatientId == "p2");
        if (column != "patient_id" && column != "*" ) Assert.Contains("p1", r.RejectedPatients);
        Assert.DoesNotContain(r.Cohort.Patients, p => p.PatientId == "p1" && p.Visits.Count == 2 && column != "*");
    }

    [Fact]
    public void An_error_names_the_line_column_and_rule_but_never_the_patients_value()
    {
        // Distinctive values a message could echo: a number out of range, a non-number, a category, a visit number.
        string[] bad =
        [
            "h1,p1,2,60,male,never,0,1,27,135,82,104,5.8,192,98765,0",
            "h1,p3,1,60,male,never,0,1,xyzzy,135,82,104,5.8,192,72,0",
            "h1,p4,1,60,plugh,never,0,1,27,135,82,104,5.8,192,72,0",
            "h1,p5,q7q,60,male,never,0,1,27,135,82,104,5.8,192,72,0",
        ];
        var r = CohortCsv.Read(new StringReader(Csv([Good1, .. bad])), "private.csv");
        Assert.Equal(4, r.Errors.Count);
        foreach (var e in r.Errors)
            foreach (var value in new[] { "98765", "xyzzy", "plugh", "q7q", "p1", "p3", "p4", "p5" })
                Assert.DoesNotContain(value, e.ToString());
    }

    [Theory]
    [InlineData("", 1, "*", "empty")]
    [InlineData("hospital,patient_id,visit\n", 1, "age", "missing")]
    [InlineData("hospital,patient_id,visit,age,sex,smoking,hypertension,diabetes,bmi,systolic,diastolic,glucose,hba1c,cholesterol,heart_rate,outcome,extra\n", 1, "extra", "unknown column")]
    [InlineData("hospital,hospital,patient_id,visit,age,sex,smoking,hypertension,diabetes,bmi,systolic,diastolic,glucose,hba1c,cholesterol,heart_rate,outcome\n", 1, "hospital", "twice")]
    public void Header_problems_are_reported_on_row_1(string text, int row, string column, string message)
    {
        var r = CohortCsv.Read(new StringReader(text), "h.csv");
        Assert.Contains(r.Errors, e => e.Row == row && e.Column == column && e.Message.Contains(message));
        Assert.Empty(r.Cohort.Patients);
    }
}
