using Serverless.Fraud.Tokenization;

namespace Serverless.Fraud.Tests.Tokenization;

public sealed class CardTokenizerTests
{
    private static byte[] Key(byte b) => Enumerable.Repeat(b, 32).ToArray();

    [Fact]
    public void Token_is_keyed_deterministic_and_ignores_separators()
    {
        using var a = new CardTokenizer(Key(1));
        using var b = new CardTokenizer(Key(2));
        var t = a.Tokenize("4111111111111111");
        Assert.Equal(t, a.Tokenize("4111 1111 1111 1111"));
        Assert.Equal(t, a.Tokenize("4111-1111-1111-1111"));
        Assert.NotEqual(t, b.Tokenize("4111111111111111"));
        Assert.NotEqual(t, a.Tokenize("4012888888881881"));
        Assert.Matches("^ct_[0-9a-f]{32}$", t.ToString());
        Assert.Equal(t, CardToken.Parse(t.ToString()));
        Assert.DoesNotContain("4111", t.ToString());
    }

    [Fact]
    public void Known_answer_matches_hmac_sha256_with_the_documented_domain()
    {
        var key = Key(7);
        using var tokenizer = new CardTokenizer(key);
        var message = System.Text.Encoding.ASCII.GetBytes("serverless-fraud/card-token/v1\0" + "4111111111111111");
        var mac = System.Security.Cryptography.HMACSHA256.HashData(key, message);
        Assert.Equal("ct_" + Convert.ToHexStringLower(mac, 0, 16), tokenizer.Tokenize("4111111111111111").ToString());
    }

    [Theory]
    [InlineData("4111111111111112", "Luhn")]
    [InlineData("41111111111", "fewer than 12")]
    [InlineData("41111111111111111111", "more than 19")]
    [InlineData("4111x11111111111", "other than digits")]
    [InlineData("", "fewer than 12")]
    public void Bad_card_numbers_are_refused_without_echoing_them(string input, string expected)
    {
        using var tokenizer = new CardTokenizer(Key(1));
        Assert.False(tokenizer.TryTokenize(input, out _, out var reason));
        Assert.Contains(expected, reason);
        var ex = Assert.Throws<FormatException>(() => tokenizer.Tokenize(input));
        Assert.DoesNotContain("41111", ex.Message);
        Assert.DoesNotContain("41111", ex.ToString());
    }

    [Fact]
    public void Short_keys_are_refused_and_the_key_is_never_printed()
    {
        Assert.Throws<ArgumentException>(() => new CardTokenizer(new byte[16]));
        using var t = new CardTokenizer(Key(0xAB));
        Assert.DoesNotContain("AB", t.ToString(), StringComparison.OrdinalIgnoreCase);
    }
}
