using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Serverless.Fraud.Tokenization;

/// <summary>
/// A card's stand-in everywhere after entry: the first 128 bits of HMAC-SHA256 over the card number.
/// <see cref="ToString"/> is "ct_" and 32 hex digits. Without the key it cannot be recomputed from a
/// guessed card number (the card number space is small enough to enumerate, so an unkeyed hash would not do).
/// </summary>
[JsonConverter(typeof(CardTokenJsonConverter))]
public readonly record struct CardToken(UInt128 Value)
{
    public override string ToString() => "ct_" + Value.ToString("x32", null);

    /// <summary>A number in [0, 1) fixed by the token (its top 32 bits), for canary routing: stable per card, uniform across cards.</summary>
    public double Bucket => (uint)(Value >> 96) / 4294967296.0;

    public static CardToken Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length != 35 || !text.StartsWith("ct_", StringComparison.Ordinal) || !UInt128.TryParse(text.AsSpan(3), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var v))
            throw new FormatException("not a card token (expected ct_ and 32 hex digits)");
        return new CardToken(v);
    }

    /// <summary>Non-throwing <see cref="Parse"/>.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out CardToken token)
    {
        token = default;
        if (text.Length != 35 || !text.StartsWith("ct_", StringComparison.Ordinal) || !UInt128.TryParse(text[3..], System.Globalization.NumberStyles.AllowHexSpecifier, null, out var v))
            return false;
        token = new CardToken(v);
        return true;
    }
}

/// <summary>A token in JSON is its text form "ct_" + 32 hex; anything else is refused (without echoing it).</summary>
public sealed class CardTokenJsonConverter : JsonConverter<CardToken>
{
    public override CardToken Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String) throw new JsonException("card token must be a string");
        var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        Span<char> buffer = stackalloc char[64];
        if (length > buffer.Length) throw new JsonException("not a card token (expected ct_ and 32 hex digits)");
        var n = reader.CopyString(buffer);
        if (!CardToken.TryParse(buffer[..n], out var token)) throw new JsonException("not a card token (expected ct_ and 32 hex digits)");
        return token;
    }

    public override void Write(Utf8JsonWriter writer, CardToken value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToString());
}

/// <summary>
/// Tokenizes primary account numbers with a keyed HMAC-SHA256 (RFC 2104, FIPS 198-1) before anything is
/// stored or logged. The key (at least 32 bytes, RFC 2104 section 3) comes from the caller; in the function
/// app it is a data key kept wrapped by a key-vault KEK, as <c>Serverless.Security.Pseudonymization</c>
/// keeps its key. No message this type throws contains the card number or any part of it.
/// </summary>
public sealed class CardTokenizer : IDisposable
{
    public const int MinimumKeyBytes = 32;

    // Domain separation: tokens of card numbers never equal pseudonyms of other identifiers under the same key.
    private static readonly byte[] Domain = Encoding.ASCII.GetBytes("serverless-fraud/card-token/v1\0");
    private readonly byte[] _key;
    private bool _disposed;

    public CardTokenizer(ReadOnlySpan<byte> key)
    {
        if (key.Length < MinimumKeyBytes)
            throw new ArgumentException($"card tokenization key must be at least {MinimumKeyBytes} bytes", nameof(key));
        _key = key.ToArray();
    }

    /// <summary>A fresh random key from <see cref="RandomNumberGenerator"/>.</summary>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(MinimumKeyBytes);

    /// <summary>
    /// The token of <paramref name="cardNumber"/>: 12 to 19 digits (ISO/IEC 7812-1), spaces and dashes
    /// ignored, valid Luhn check digit.
    /// </summary>
    /// <exception cref="FormatException">Not a card number (the message never repeats the input).</exception>
    public CardToken Tokenize(ReadOnlySpan<char> cardNumber)
    {
        if (!TryTokenize(cardNumber, out var token, out var reason)) throw new FormatException(reason);
        return token;
    }

    /// <summary>The transaction with its card number replaced by the token: what the gateway enqueues.</summary>
    /// <exception cref="FormatException">The card number is not one (the message never repeats it).</exception>
    public CardEvent Tokenize(Transaction transaction)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return CardEvent.From(transaction, Tokenize(transaction.CardNumber));
    }

    /// <summary>Non-throwing form of <see cref="Tokenize"/>; <paramref name="reason"/> never contains the input.</summary>
    public bool TryTokenize(ReadOnlySpan<char> cardNumber, out CardToken token, out string? reason)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        token = default;
        Span<byte> message = stackalloc byte[64];
        Domain.CopyTo(message);
        var n = 0;
        foreach (var ch in cardNumber)
        {
            if (ch is ' ' or '-') continue;
            if (!char.IsAsciiDigit(ch)) { reason = "card number has a character other than digits, spaces and dashes"; return false; }
            if (n == 19) { reason = "card number has more than 19 digits"; return false; }
            message[Domain.Length + n++] = (byte)ch;
        }
        if (n < 12) { reason = "card number has fewer than 12 digits"; return false; }
        if (!LuhnValid(message.Slice(Domain.Length, n))) { reason = "card number fails the Luhn check"; return false; }
        Span<byte> mac = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_key, message[..(Domain.Length + n)], mac);
        CryptographicOperations.ZeroMemory(message);
        token = new CardToken(BinaryPrimitives.ReadUInt128BigEndian(mac));
        reason = null;
        return true;
    }

    private static bool LuhnValid(ReadOnlySpan<byte> digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 1) { d *= 2; if (d > 9) d -= 9; }
            sum += d;
        }
        return sum % 10 == 0;
    }

    public override string ToString() => "CardTokenizer(HMAC-SHA256, key hidden)";

    public void Dispose()
    {
        if (_disposed) return;
        CryptographicOperations.ZeroMemory(_key);
        _disposed = true;
    }
}
