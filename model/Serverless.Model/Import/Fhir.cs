namespace Serverless.Model.Import;

/// <summary>FHIR R4 codes the importer and writer use (LOINC for observations, SNOMED CT for conditions, UCUM units).</summary>
public static class Fhir
{
    public const string Loinc = "http://loinc.org";
    public const string Snomed = "http://snomed.info/sct";
    public const string Ucum = "http://unitsofmeasure.org";

    /// <summary>Visit column of <c>CohortGenerator.Schema</c> -> (LOINC code, UCUM unit code).</summary>
    public static readonly IReadOnlyDictionary<string, (string Code, string Unit, string Display)> VitalCodes = new Dictionary<string, (string, string, string)>
    {
        ["bmi"] = ("39156-5", "kg/m2", "Body mass index (BMI) [Ratio]"),
        ["systolic"] = ("8480-6", "mm[Hg]", "Systolic blood pressure"),
        ["diastolic"] = ("8462-4", "mm[Hg]", "Diastolic blood pressure"),
        ["glucose"] = ("2339-0", "mg/dL", "Glucose [Mass/volume] in Blood"),
        ["hba1c"] = ("4548-4", "%", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        ["cholesterol"] = ("2093-3", "mg/dL", "Cholesterol [Mass/volume] in Serum or Plasma"),
        ["heart_rate"] = ("8867-4", "/min", "Heart rate"),
    };

    public const string BloodPressurePanel = "85354-9";
    public const string SmokingStatus = "72166-2";

    /// <summary>SNOMED CT smoking-status answers -> category of the schema's smoking column (never, former, current).</summary>
    public static readonly IReadOnlyDictionary<string, int> SmokingAnswers = new Dictionary<string, int>
    {
        ["266919005"] = 0, // Never smoked tobacco
        ["8517006"] = 1,   // Ex-smoker
        ["77176002"] = 2,  // Smoker
        ["449868002"] = 2, // Smokes tobacco daily
        ["428041000124106"] = 2, // Occasional tobacco smoker
    };

    public static readonly IReadOnlyList<string> HypertensionCodes = ["38341003"]; // Hypertensive disorder
    public static readonly IReadOnlyList<string> DiabetesCodes = ["44054006", "73211009"]; // Type 2 diabetes; diabetes mellitus

    /// <summary>Default outcome: a cardiovascular event (myocardial infarction, stroke, heart failure).</summary>
    public static readonly IReadOnlyList<string> DefaultOutcomeCodes = ["22298006", "230690007", "84114007"];
}
