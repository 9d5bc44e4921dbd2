using System.Diagnostics;
using System.Security.Cryptography;
using Serverless.Security.Audit;
using Serverless.Security.Envelope;
using Serverless.Security.Keys;

namespace Serverless.Bench.Suites;

/// <summary>
/// Security-layer figures that the <c>host</c> suite appends to its RESULT line, measured here and now:
/// <list type="bullet">
/// <item><c>envelope_mb_per_s</c>: envelope encryption (fresh data key wrapped by the local keyring,
/// AES-256-GCM in 64 KiB framed chunks) of an in-memory object, MB (10^6 bytes) of plaintext per second, median of runs;</item>
/// <item><c>envelope_decrypt_mb_per_s</c>: the same object decrypted and verified;</item>
/// <item><c>aesgcm_raw_mb_per_s</c>: the peer, one-shot AesGcm over the same bytes (the framing's cost is the gap);</item>
/// <item><c>audit_appends_per_s</c>: durable audit appends (SQLite WAL, synchronous=FULL) awaited one after another;</item>
/// <item><c>audit_appends_concurrent_per_s</c>: the same with 16 concurrent writers sharing commits (group commit).</item>
/// </list>
/// </summary>
internal static class SecurityFigures
{
    public static async Task<IReadOnlyList<(string Key, object Value)>> MeasureAsync(bool quick)
    {
        var dir = Directory.CreateTempSubdirectory("bench-security-").FullName;
        try
        {
            using var keyring = LocalKeyring.Open(new LocalKeyringOptions { DataDirectory = dir, MasterKeyEnvironmentVariable = "SERVERLESS_BENCH_UNSET_MASTER_KEY" });
            await keyring.CreateKeyAsync("bench-kek", KeyKind.Wrapping);
            var encryptor = new EnvelopeEncryptor(keyring, new EnvelopeOptions { KeyName = "bench-kek" });

            var size = quick ? 16 << 20 : 128 << 20;
            var runs = quick ? 5 : 9;
            var plaintext = RandomNumberGenerator.GetBytes(size);
            var envelope = new MemoryStream(size + size / 1000 + 4096);

            var encryptSeconds = await MedianSecondsAsync(runs, async () =>
            {
                envelope.SetLength(0);
                await encryptor.EncryptAsync(new MemoryStream(plaintext, writable: false), envelope, "bench/object");
            });
            var sealedBytes = envelope.ToArray();
            var decryptSeconds = await MedianSecondsAsync(runs, () =>
                encryptor.DecryptAsync(new MemoryStream(sealedBytes, writable: false), Stream.Null, "bench/object"));

            var key = RandomNumberGenerator.GetBytes(32);
            var nonce = RandomNumberGenerator.GetBytes(12);
            var ciphertext = new byte[size];
            var tag = new byte[16];
            using var gcm = new AesGcm(key, 16);
            var rawSeconds = await MedianSecondsAsync(runs, () =>
            {
                gcm.Encrypt(nonce, plaintext, ciphertext, tag);
                return Task.CompletedTask;
            });

            var (sequential, concurrent) = await MeasureAuditAsync(keyring, dir, quick);
            double MegabytesPerSecond(double seconds) => size / 1e6 / seconds;
            return
            [
                ("envelope_mb_per_s", MegabytesPerSecond(encryptSeconds)),
                ("envelope_decrypt_mb_per_s", MegabytesPerSecond(decryptSeconds)),
                ("aesgcm_raw_mb_per_s", MegabytesPerSecond(rawSeconds)),
                ("audit_appends_per_s", sequential),
                ("audit_appends_concurrent_per_s", concurrent),
            ];
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<(double Sequential, double Concurrent)> MeasureAuditAsync(IKeyVault vault, string dir, bool quick)
    {
        await using var log = await SqliteAuditLog.OpenAsync(new AuditLogOptions { DatabasePath = Path.Combine(dir, "audit.db"), CheckpointEvery = 1000 }, vault);
        var sequentialCount = quick ? 300 : 2000;
        for (var i = 0; i < 20; i++) await log.AppendAsync(Event(i)); // warm-up
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < sequentialCount; i++) await log.AppendAsync(Event(i));
        var sequential = sequentialCount / Stopwatch.GetElapsedTime(start).TotalSeconds;

        const int writers = 16;
        var perWriter = quick ? 150 : 1000;
        start = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; i < perWriter; i++) await log.AppendAsync(Event(w * perWriter + i));
        })));
        var concurrent = writers * perWriter / Stopwatch.GetElapsedTime(start).TotalSeconds;
        return (sequential, concurrent);
    }

    private static AuditEvent Event(int i) =>
        new($"client-{i % 7}", AuditActions.KeyUse, $"federation/f{i % 13}", AuditOutcome.Success, $"req-{i}", "bench");

    private static async Task<double> MedianSecondsAsync(int runs, Func<Task> action)
    {
        await action(); // warm-up
        var samples = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await action();
            samples[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
        }
        return Measure.Median(samples);
    }
}
