using System.Text;

namespace Serverless.Fraud;

/// <summary>
/// Text that may reach an error message or a log passes through here: any run of six or more digits
/// (spaces and dashes inside allowed) becomes '#', so a card number pasted into the wrong field is never echoed.
/// </summary>
public static class Redaction
{
    public static string Digits(string? text)
    {
        if (string.IsNullOrEmpty(text)) return "";
        var sb = new StringBuilder(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            if (!char.IsAsciiDigit(text[i])) { sb.Append(text[i++]); continue; }
            var j = i;
            var digits = 0;
            while (j < text.Length && (char.IsAsciiDigit(text[j]) || ((text[j] == ' ' || text[j] == '-') && j + 1 < text.Length && char.IsAsciiDigit(text[j + 1]))))
            {
                if (char.IsAsciiDigit(text[j])) digits++;
                j++;
            }
            if (digits >= 6) sb.Append('#');
            else sb.Append(text, i, j - i);
            i = j;
        }
        return sb.ToString();
    }
}
