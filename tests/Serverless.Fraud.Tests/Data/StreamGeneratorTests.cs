using Serverless.Fraud.Data;

namespace Serverless.Fraud.Tests.Data;

public sealed class StreamGeneratorTests
{
    private static readonly StreamOptions Small = new() { Banks = 3, CardsPerBank = 200, Days = 3, Seed = 5, FraudCardFraction = 0.1 };

    [Fact]
    public void Same_seed_gives_the_same_stream_and_another_seed_does_not()
    {
        var a = StreamGenerator.Generate(Small).Transactions;
        var b = StreamGenerator.Generate(Small).Transactions;
        var c = StreamGenerator.Generate(Small with { Seed = 6 }).Transactions;
        Assert.Equal(a, b);
        Assert.NotEqual(a.Take(100).Select(t => t.Amount), c.Take(100).Select(t => t.Amount));
    }

    [Fact]
    public void Stream_is_in_time_order_with_valid_fields()
    {
        var tx = StreamGenerator.Generate(Small).Transactions;
        Assert.True(tx.Count > 3 * 200 * 3);
        for (var i = 1; i < tx.Count; i++) Assert.True(tx[i - 1].TimestampMs <= tx[i].TimestampMs);
        foreach (var t in tx)
        {
            Assert.True(t.Amount > 0);
            Assert.InRange(t.LocationX, -1f, 1f);
            Assert.InRange(t.LocationY, -1f, 1f);
            Assert.Equal(t.Pattern != FraudPattern.None, t.IsFraud);
            Assert.Equal(t.Kind == TransactionKind.Transfer, t.Direction != 0);
            Assert.Equal(16, t.CardNumber.Length);
            Assert.Equal(t.CardNumber[15] - '0', StreamGenerator.LuhnCheckDigit(t.CardNumber.AsSpan(0, 15)));
        }
    }

    [Fact]
    public void Every_pattern_is_injected_and_labelled_with_its_signature()
    {
        var tx = StreamGenerator.Generate(Small with { CardsPerBank = 400, FraudCardFraction = 0.15 }).Transactions;
        foreach (var p in Enum.GetValues<FraudPattern>())
            Assert.Contains(tx, t => t.Pattern == p);
        // Card testing: sub-3 probes online; mule rings: transfers both ways; collusion: round amounts;
        // velocity: gaps of minutes on one card; takeover: a device the card never used before.
        Assert.Contains(tx, t => t.Pattern == FraudPattern.CardTesting && t.Amount < 3 && t.Online);
        var mule = tx.Where(t => t.Pattern == FraudPattern.MuleRing).ToList();
        Assert.All(mule, t => Assert.Equal(TransactionKind.Transfer, t.Kind));
        Assert.Contains(mule, t => t.Direction == 1);
        Assert.Contains(mule, t => t.Direction == -1);
        Assert.All(tx.Where(t => t.Pattern == FraudPattern.MerchantCollusion), t => Assert.Equal(0, t.Amount % 50));
        foreach (var card in tx.Where(t => t.Pattern == FraudPattern.VelocityAbuse).GroupBy(t => t.CardNumber))
        {
            var times = card.Select(t => t.TimestampMs).ToList();
            Assert.True(times.Count >= 6);
            Assert.True(times[^1] - times[0] < 2 * 3_600_000L);
        }
        foreach (var card in tx.Where(t => t.Pattern == FraudPattern.AccountTakeover).GroupBy(t => t.CardNumber))
        {
            var first = card.First();
            var before = tx.Where(t => t.CardNumber == first.CardNumber && t.TimestampMs < first.TimestampMs).ToList();
            Assert.NotEmpty(before);
            Assert.DoesNotContain(before, t => t.DeviceId == first.DeviceId && t.DeviceId != 0);
            var homeX = before.Average(t => t.LocationX);
            var homeY = before.Average(t => t.LocationY);
            var d2 = (first.LocationX - homeX) * (first.LocationX - homeX) + (first.LocationY - homeY) * (first.LocationY - homeY);
            Assert.True(d2 > 0.1, $"takeover place should be far from home (d2 = {d2})");
        }
    }

    [Fact]
    public void Banks_are_non_iid_and_each_depends_only_on_its_own_seed()
    {
        var s = StreamGenerator.Generate(Small with { Banks = 4, CardsPerBank = 400 });
        var amounts = s.Banks.Select(b => s.Transactions.Where(t => t.Bank == b.Bank && !t.IsFraud).Average(t => Math.Log(t.Amount))).ToList();
        var fraudRates = s.Banks.Select(b => s.Transactions.Where(t => t.Bank == b.Bank).Average(t => t.IsFraud ? 1.0 : 0)).ToList();
        Assert.True(amounts.Max() - amounts.Min() > 0.1, "banks should differ in amount scale");
        Assert.True(fraudRates.Max() / Math.Max(1e-9, fraudRates.Min()) > 1.3, "banks should differ in prevalence");
        Assert.True(s.Banks.Select(b => b.PatternMix[FraudPattern.AccountTakeover]).Distinct().Count() > 1);

        var iid = StreamGenerator.Generate(Small with { Banks = 4, CardsPerBank = 400, Heterogeneity = 0 });
        Assert.Single(iid.Banks.Select(b => b.Cards).Distinct());

        // Bank 1's traffic does not change when more banks are generated (same centers apart, as geography is shared).
        var three = StreamGenerator.Generate(Small with { Banks = 3 }).Transactions.Where(t => t.Bank == 1).Select(t => (t.CardNumber, t.Amount)).ToList();
        var five = StreamGenerator.Generate(Small with { Banks = 5 }).Transactions.Where(t => t.Bank == 1).Select(t => (t.CardNumber, t.Amount)).ToList();
        Assert.Equal(three.Where((_, i) => i < 50), five.Where((_, i) => i < 50));
    }

    [Fact]
    public void ToString_never_shows_the_card_number()
    {
        var t = StreamGenerator.Generate(Small).Transactions[0];
        Assert.DoesNotContain(t.CardNumber, t.ToString());
        Assert.DoesNotContain(t.CardNumber[..8], t.ToString());
    }
}
