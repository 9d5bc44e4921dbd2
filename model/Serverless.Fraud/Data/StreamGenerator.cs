namespace Serverless.Fraud.Data;

/// <summary>Size, seed and heterogeneity of a generated stream.</summary>
public sealed record StreamOptions
{
    public int Banks { get; init; } = 4;
    public int CardsPerBank { get; init; } = 500;

    /// <summary>Length of the stream in days (legitimate traffic is spread over it).</summary>
    public double Days { get; init; } = 4;

    /// <summary>Mean legitimate events per card and day (each card draws its own rate around it).</summary>
    public double EventsPerCardPerDay { get; init; } = 4;

    /// <summary>Share of cards that carry one fraud episode (scaled per bank by its prevalence).</summary>
    public double FraudCardFraction { get; init; } = 0.04;

    /// <summary>0 = IID banks; 1 = the default spread of amount scale, geography, prevalence, pattern mix and size.</summary>
    public double Heterogeneity { get; init; } = 1;

    public int Seed { get; init; } = 1;

    /// <summary>Start of the stream, ms since the Unix epoch.</summary>
    public long StartMs { get; init; } = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    /// <summary>Patterns to inject (all by default); the bank mix is renormalized over these.</summary>
    public IReadOnlyList<FraudPattern> Patterns { get; init; } =
        [FraudPattern.CardTesting, FraudPattern.AccountTakeover, FraudPattern.MuleRing, FraudPattern.MerchantCollusion, FraudPattern.VelocityAbuse];

    public StreamOptions Validated()
    {
        if (Banks is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(Banks), Banks, "1..64");
        if (CardsPerBank is < 1 or > 1_000_000) throw new ArgumentOutOfRangeException(nameof(CardsPerBank), CardsPerBank, "1..1000000");
        if (!(Days > 0 && Days <= 365)) throw new ArgumentOutOfRangeException(nameof(Days), Days, "(0, 365]");
        if (!(EventsPerCardPerDay > 0 && EventsPerCardPerDay <= 1000)) throw new ArgumentOutOfRangeException(nameof(EventsPerCardPerDay), EventsPerCardPerDay, "(0, 1000]");
        if (!(FraudCardFraction >= 0 && FraudCardFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(FraudCardFraction), FraudCardFraction, "[0, 1]");
        if (!(Heterogeneity >= 0 && Heterogeneity <= 4)) throw new ArgumentOutOfRangeException(nameof(Heterogeneity), Heterogeneity, "[0, 4]");
        ArgumentNullException.ThrowIfNull(Patterns);
        foreach (var p in Patterns)
            if (p == FraudPattern.None || !Enum.IsDefined(p)) throw new ArgumentException($"not an injectable pattern: {p}", nameof(Patterns));
        return this;
    }
}

/// <summary>How one bank's traffic differs from the others (the non-IID knobs), for reports and tests.</summary>
public sealed record BankProfile(
    int Bank,
    int Cards,
    double AmountScale,
    float CenterX,
    float CenterY,
    int UtcOffsetHours,
    double FraudMultiplier,
    IReadOnlyDictionary<FraudPattern, double> PatternMix);

/// <summary>A generated stream in time order, and the bank profiles behind it.</summary>
public sealed record GeneratedStream(IReadOnlyList<Transaction> Transactions, IReadOnlyList<BankProfile> Banks);

/// <summary>
/// Seeded card and transfer streams with labelled fraud episodes. Bank <c>b</c> depends only on
/// (seed, b, options), so adding banks does not change the others. Legitimate cards have a home, one or
/// two devices, a personal amount scale and rate, a few usual merchants, day-heavy timing, and
/// occasional transfers. Account takeover is built so that no single event gives it away: its places
/// are drawn from the same distribution as the homes of all cards, its devices are as random as any,
/// its amounts and pace are the card's own; only the contrast with the card's history shows it.
/// </summary>
public static class StreamGenerator
{
    private const long HourMs = 3_600_000;
    private const long DayMs = 24 * HourMs;
    private static readonly FraudPattern[] AllPatterns =
        [FraudPattern.CardTesting, FraudPattern.AccountTakeover, FraudPattern.MuleRing, FraudPattern.MerchantCollusion, FraudPattern.VelocityAbuse];

    public static GeneratedStream Generate(StreamOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Validated();
        var centers = new (float X, float Y)[o.Banks];
        for (var b = 0; b < o.Banks; b++)
        {
            var r = new Random(Mix(o.Seed, b, 0));
            // Geography: banks sit around the region; with heterogeneity 0 they share one center.
            centers[b] = ((float)(Math.Clamp(Normal(r) * 0.4, -0.7, 0.7) * Math.Min(1, o.Heterogeneity)),
                          (float)(Math.Clamp(Normal(r) * 0.4, -0.7, 0.7) * Math.Min(1, o.Heterogeneity)));
        }
        var all = new List<Transaction>();
        var profiles = new List<BankProfile>();
        for (var b = 0; b < o.Banks; b++)
        {
            var bank = new BankGenerator(o, b, centers);
            profiles.Add(bank.Profile);
            all.AddRange(bank.Run());
        }
        // Time order; ties broken by bank then card so the order is reproducible.
        all.Sort(static (x, y) =>
        {
            var c = x.TimestampMs.CompareTo(y.TimestampMs);
            if (c != 0) return c;
            c = x.Bank.CompareTo(y.Bank);
            return c != 0 ? c : string.CompareOrdinal(x.CardNumber, y.CardNumber);
        });
        return new GeneratedStream(all, profiles);
    }

    /// <summary>A 16-digit PAN with a valid Luhn check digit (ISO/IEC 7812-1), issuer prefix 4 and a per-bank BIN.</summary>
    internal static string CardNumber(int bank, int card)
    {
        Span<char> digits = stackalloc char[16];
        var body = $"4{(10000 + bank) % 100000:D5}{card:D9}";
        body.AsSpan(0, 15).CopyTo(digits);
        digits[15] = (char)('0' + LuhnCheckDigit(digits[..15]));
        return new string(digits);
    }

    internal static int LuhnCheckDigit(ReadOnlySpan<char> payload)
    {
        var sum = 0;
        for (var i = 0; i < payload.Length; i++)
        {
            var d = payload[payload.Length - 1 - i] - '0';
            if (i % 2 == 0) { d *= 2; if (d > 9) d -= 9; }
            sum += d;
        }
        return (10 - sum % 10) % 10;
    }

    internal static int Mix(int seed, int a, int b) => (int)(Splitmix(Splitmix(Splitmix((ulong)(uint)seed) ^ (uint)a) ^ (uint)b) & int.MaxValue);

    internal static ulong Splitmix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    internal static double Normal(Random r)
    {
        // Box-Muller; 1 - u keeps the log argument in (0, 1].
        var u = 1 - r.NextDouble();
        var v = r.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * v);
    }

    private sealed class CardState
    {
        public required string Number { get; init; }
        public required int Index { get; init; }
        public required float HomeX { get; init; }
        public required float HomeY { get; init; }
        public required int[] Devices { get; init; }
        public required int[] Merchants { get; init; }
        public required double LogAmountMean { get; init; }
        public required double RatePerDay { get; init; }
        public required float AgeDays { get; init; }
        public required bool IsCredit { get; init; }
    }

    private sealed class BankGenerator
    {
        private readonly StreamOptions _o;
        private readonly int _bank;
        private readonly Random _r;
        private readonly (float X, float Y)[] _centers;
        private readonly List<Transaction> _out = [];
        private readonly long _endMs;

        public BankGenerator(StreamOptions o, int bank, (float X, float Y)[] centers)
        {
            _o = o;
            _bank = bank;
            _centers = centers;
            _r = new Random(Mix(o.Seed, bank, 1));
            var h = o.Heterogeneity;
            var cards = Math.Max(1, (int)Math.Round(o.CardsPerBank * (1 + 0.5 * Math.Min(1, h) * (2 * _r.NextDouble() - 1))));
            var mix = new Dictionary<FraudPattern, double>();
            double total = 0;
            foreach (var p in AllPatterns)
            {
                var w = o.Patterns.Contains(p) ? Math.Exp(0.7 * h * Normal(_r)) : 0;
                mix[p] = w;
                total += w;
            }
            foreach (var p in AllPatterns) mix[p] = total > 0 ? mix[p] / total : 0;
            Profile = new BankProfile(
                bank, cards,
                AmountScale: Math.Exp(0.3 * h * Normal(_r)),
                centers[bank].X, centers[bank].Y,
                UtcOffsetHours: (int)Math.Round(Math.Min(1, h) * ((bank * 5) % 12 - 5)),
                FraudMultiplier: Math.Exp(0.5 * h * Normal(_r)),
                mix);
            _endMs = o.StartMs + (long)(o.Days * DayMs);
        }

        public BankProfile Profile { get; }

        public List<Transaction> Run()
        {
            var cards = new CardState[Profile.Cards];
            for (var c = 0; c < cards.Length; c++) cards[c] = NewCard(c);
            foreach (var card in cards) Legitimate(card);

            // Fraud episodes: each chosen card gets one, after at least a fifth of the stream of history.
            var fraudCards = (int)Math.Round(cards.Length * Math.Min(1, _o.FraudCardFraction * Profile.FraudMultiplier));
            var order = Enumerable.Range(0, cards.Length).ToArray();
            _r.Shuffle(order);
            var next = 0;
            for (var i = 0; i < fraudCards && next < order.Length; i++)
            {
                var pattern = PickPattern();
                if (pattern == FraudPattern.None) break;
                var start = _o.StartMs + (long)((0.2 + 0.7 * _r.NextDouble()) * (_endMs - _o.StartMs));
                switch (pattern)
                {
                    case FraudPattern.CardTesting: CardTesting(cards[order[next++]], start); break;
                    case FraudPattern.AccountTakeover: AccountTakeover(cards[order[next++]], start); break;
                    case FraudPattern.VelocityAbuse: Velocity(cards[order[next++]], start); break;
                    case FraudPattern.MuleRing:
                    {
                        var ring = Math.Min(order.Length - next, 3 + _r.Next(3));
                        var collector = 900_000_000 + _r.Next(1_000_000);
                        for (var m = 0; m < ring; m++) Mule(cards[order[next++]], start + _r.Next(0, (int)(6 * HourMs)), collector);
                        i += ring - 1;
                        break;
                    }
                    case FraudPattern.MerchantCollusion:
                    {
                        var ring = Math.Min(order.Length - next, 3 + _r.Next(4));
                        var merchant = 800_000_000 + _bank * 1000 + _r.Next(1000);
                        for (var m = 0; m < ring; m++) Collusion(cards[order[next++]], start + _r.Next(0, (int)(12 * HourMs)), merchant);
                        i += ring - 1;
                        break;
                    }
                }
            }
            return _out;
        }

        private FraudPattern PickPattern()
        {
            var u = _r.NextDouble();
            var acc = 0.0;
            var last = FraudPattern.None;
            foreach (var p in AllPatterns)
            {
                var w = Profile.PatternMix[p];
                if (w <= 0) continue;
                last = p;
                acc += w;
                if (u < acc) return p;
            }
            return last;
        }

        private CardState NewCard(int c)
        {
            var home = (X: Clamp(Profile.CenterX + 0.3 * Normal(_r)), Y: Clamp(Profile.CenterY + 0.3 * Normal(_r)));
            var devices = new int[1 + (_r.NextDouble() < 0.3 ? 1 : 0)];
            for (var d = 0; d < devices.Length; d++) devices[d] = _r.Next();
            var merchants = new int[4 + _r.Next(6)];
            for (var m = 0; m < merchants.Length; m++) merchants[m] = _bank * 100_000 + _r.Next(50_000);
            return new CardState
            {
                Number = CardNumber(_bank, c),
                Index = c,
                HomeX = home.X,
                HomeY = home.Y,
                Devices = devices,
                Merchants = merchants,
                LogAmountMean = 3.2 + Math.Log(Profile.AmountScale) + 0.5 * Normal(_r),
                RatePerDay = _o.EventsPerCardPerDay * Math.Exp(0.4 * Normal(_r)),
                AgeDays = (float)Math.Exp(4.5 + 1.2 * Normal(_r)),
                IsCredit = _r.NextDouble() < 0.6,
            };
        }

        private void Legitimate(CardState card)
        {
            var t = _o.StartMs;
            var meanGapMs = DayMs / card.RatePerDay;
            while (true)
            {
                t += (long)(-Math.Log(1 - _r.NextDouble()) * meanGapMs);
                if (t >= _endMs) break;
                // Day-heavy: night-time events (local 0-6 h) are kept one time in four.
                var localHour = LocalHour(t);
                if (localHour < 6 && _r.NextDouble() > 0.25) continue;
                if (_r.NextDouble() < 0.08)
                {
                    var outgoing = _r.NextDouble() < 0.6;
                    Emit(card, t, Round2(Math.Exp(card.LogAmountMean + 1.5 + 0.7 * Normal(_r))), card.Merchants[0] + 7_000_000, MerchantCategory.Online,
                        online: true, TransactionKind.Transfer, outgoing ? 1 : -1, Near(card.HomeX, 0.02), Near(card.HomeY, 0.02), card.Devices[0], FraudPattern.None);
                    continue;
                }
                var online = _r.NextDouble() < 0.3;
                var merchant = _r.NextDouble() < 0.8 ? card.Merchants[_r.Next(card.Merchants.Length)] : _bank * 100_000 + _r.Next(50_000);
                var category = online ? MerchantCategory.Online : (MerchantCategory)(Math.Abs(merchant) % 6 == 3 ? 0 : Math.Abs(merchant) % 6);
                var amount = Math.Exp(card.LogAmountMean + 0.8 * Normal(_r));
                if (_r.NextDouble() < 0.03) amount = 10 * Math.Max(1, Math.Round(amount / 10));
                Emit(card, t, Round2(amount), merchant, category, online, TransactionKind.Purchase, 0,
                    Near(card.HomeX, online ? 0.02 : 0.06), Near(card.HomeY, online ? 0.02 : 0.06),
                    online ? card.Devices[_r.Next(card.Devices.Length)] : 0, FraudPattern.None);
            }
        }

        private void CardTesting(CardState card, long t)
        {
            var probes = 3 + _r.Next(4);
            var device = _r.Next();
            var (x, y) = ElsewhereHome(card);
            for (var i = 0; i < probes; i++)
            {
                t += (long)(1000 * (5 - 40 * Math.Log(1 - _r.NextDouble())));
                Emit(card, t, Round2(0.5 + 2 * _r.NextDouble()), _r.Next(), MerchantCategory.Online, true, TransactionKind.Purchase, 0, x, y, device, FraudPattern.CardTesting);
            }
            var cashouts = 1 + _r.Next(2);
            for (var i = 0; i < cashouts; i++)
            {
                t += (long)(60_000 * (1 + 10 * _r.NextDouble()));
                Emit(card, t, Round2(Math.Exp(5.3 + 0.5 * Normal(_r))), _r.Next(), _r.NextDouble() < 0.5 ? MerchantCategory.Electronics : MerchantCategory.Online,
                    true, TransactionKind.Purchase, 0, x, y, device, FraudPattern.CardTesting);
            }
        }

        private void AccountTakeover(CardState card, long t)
        {
            // New device, new place: online (account login) from a place that is another card's kind of home
            // (the same marginal distribution as every home), far from this card's; amounts, categories and
            // pace are this card's own, so only the contrast with its history gives it away.
            var device = _r.Next();
            var (x, y) = ElsewhereHome(card);
            var n = 2 + _r.Next(4);
            for (var i = 0; i < n; i++)
            {
                t += (long)(-Math.Log(1 - _r.NextDouble()) * DayMs / card.RatePerDay * 0.5);
                var transfer = _r.NextDouble() < 0.15;
                var merchant = _bank * 100_000 + _r.Next(50_000);
                Emit(card, t, Round2(Math.Exp(card.LogAmountMean + (transfer ? 1.5 : 0) + 0.8 * Normal(_r))), transfer ? merchant + 7_000_000 : merchant, MerchantCategory.Online,
                    true, transfer ? TransactionKind.Transfer : TransactionKind.Purchase, transfer ? 1 : 0, Near(x, 0.02), Near(y, 0.02), device, FraudPattern.AccountTakeover);
            }
        }

        private void Velocity(CardState card, long t)
        {
            var n = 6 + _r.Next(7);
            for (var i = 0; i < n; i++)
            {
                t += (long)(60_000 * (1 + 6 * _r.NextDouble()));
                var merchant = _bank * 100_000 + _r.Next(50_000);
                var category = (MerchantCategory)(merchant % 6 == 3 ? 5 : merchant % 6);
                Emit(card, t, Round2(Math.Exp(card.LogAmountMean + 0.7 + 0.6 * Normal(_r))), merchant, category, false, TransactionKind.Purchase, 0,
                    Near(card.HomeX, 0.1), Near(card.HomeY, 0.1), 0, FraudPattern.VelocityAbuse);
            }
        }

        private void Mule(CardState card, long t, int collector)
        {
            var sources = 2 + _r.Next(4);
            double received = 0;
            for (var i = 0; i < sources; i++)
            {
                t += (long)(HourMs * 0.5 * _r.NextDouble());
                var amount = _r.NextDouble() < 0.5 ? 100 * (2 + _r.Next(20)) : Round2(200 + 1800 * _r.NextDouble());
                received += amount;
                Emit(card, t, amount, 700_000_000 + _r.Next(1_000_000), MerchantCategory.Online, true, TransactionKind.Transfer, -1,
                    Near(card.HomeX, 0.02), Near(card.HomeY, 0.02), card.Devices[0], FraudPattern.MuleRing);
            }
            t += (long)(HourMs * (0.5 + 2 * _r.NextDouble()));
            Emit(card, t, Round2(received * (0.85 + 0.1 * _r.NextDouble())), collector, MerchantCategory.Online, true, TransactionKind.Transfer, 1,
                Near(card.HomeX, 0.02), Near(card.HomeY, 0.02), card.Devices[0], FraudPattern.MuleRing);
        }

        private void Collusion(CardState card, long t, int merchant)
        {
            var n = 3 + _r.Next(4);
            var (mx, my) = (Near(Profile.CenterX, 0.2), Near(Profile.CenterY, 0.2));
            for (var i = 0; i < n; i++)
            {
                t += (long)(HourMs * (1 + 4 * _r.NextDouble()));
                double[] rounds = [100, 150, 200, 250, 300, 500];
                Emit(card, t, rounds[_r.Next(rounds.Length)], merchant, MerchantCategory.Electronics, false, TransactionKind.Purchase, 0,
                    Near(mx, 0.01), Near(my, 0.01), 0, FraudPattern.MerchantCollusion);
            }
        }

        /// <summary>A home-like place of a random bank, at least 0.6 region units from this card's home.</summary>
        private (float X, float Y) ElsewhereHome(CardState card)
        {
            for (var attempt = 0; ; attempt++)
            {
                var c = _centers[_r.Next(_centers.Length)];
                var x = Clamp(c.X + 0.3 * Normal(_r));
                var y = Clamp(c.Y + 0.3 * Normal(_r));
                var dx = x - card.HomeX;
                var dy = y - card.HomeY;
                if (dx * dx + dy * dy >= 0.36 || attempt > 50) return (x, y);
            }
        }

        private void Emit(CardState card, long t, double amount, int merchant, MerchantCategory category, bool online, TransactionKind kind, int direction,
            float x, float y, int device, FraudPattern pattern)
        {
            if (t >= _endMs + DayMs) return; // an episode may run a little past the end; not further
            _out.Add(new Transaction
            {
                TransactionId = $"b{_bank}-{_out.Count:x}",
                CardNumber = card.Number,
                Bank = _bank,
                TimestampMs = t,
                Amount = Math.Max(0.01, amount),
                MerchantId = merchant,
                Category = category,
                Online = online,
                Kind = kind,
                Direction = direction,
                LocationX = x,
                LocationY = y,
                DeviceId = device,
                UtcOffsetHours = Profile.UtcOffsetHours,
                CardAgeDays = card.AgeDays,
                IsCredit = card.IsCredit,
                IsFraud = pattern != FraudPattern.None,
                Pattern = pattern,
            });
        }

        private int LocalHour(long t) => (int)(((t / HourMs + Profile.UtcOffsetHours) % 24 + 24) % 24);

        private float Near(float v, double sd) => Clamp(v + sd * Normal(_r));

        private static float Clamp(double v) => (float)Math.Clamp(v, -1, 1);

        private static double Round2(double v) => Math.Round(v, 2);
    }
}
