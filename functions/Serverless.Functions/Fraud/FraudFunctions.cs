using System.Buffers.Text;
using System.Security.Claims;
using System.Text;
using Microsoft.Extensions.Options;
using Serverless.Telemetry;
using Serverless.Fraud;
using Serverless.Fraud.Data;
using Serverless.Fraud.Scoring;
using Serverless.Fraud.Tokenization;
using Serverless.Functions.Fraud.Services;
using Serverless.Functions.Hosting;
using Serverless.Functions.Inference;
using Serverless.Functions.Inference.Services;
using Serverless.Security.Hosting;
using Serverless.Contracts.Inference;

namespace Serverless.Functions.Fraud;

/// <summary>
/// The stream: a bank posts transactions (tokenized at once, queued as micro-batches), the queue function
/// scores them and puts alerts on the bank's alerts queue, and the bank reads and acknowledges its alerts.
/// Refused transactions go to <c>fraud-transactions-poison</c> with their reasons, card numbers removed.
/// </summary>
public sealed class FraudFunctions(CardTokenizer tokenizer, FraudScoring scoring, FraudStore store, IQueueStore queues, IAuditLog audit, IOptions<FraudOptions> options, TimeProvider time)
{
    private static readonly string PoisonQueue = PoisonMessage.PoisonQueueName(FraudStore.TransactionsQueue);
    private readonly int _maxDequeueCount = QueueRetries.MaxDequeueCount(AppContext.BaseDirectory);

    /// <summary>
    /// POST <c>{"transactions":[...]}</c>: 202 with how many were queued; the refused ones (bad card number or
    /// field) are listed by index with their reasons and kept on the poison queue without their card numbers.
    /// 400 when the body is not a transaction batch, 413 above the size limit.
    /// </summary>
    [Function("SubmitFraudTransactions")]
    [RequirePermission(Permissions.FraudSubmit, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    public async Task<IResult> Submit([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "fraud/{tenant}/transactions")] HttpRequest request, string tenant,
        CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (TenantProblem(tenant) is { } invalid) return invalid;
        // A transaction in JSON is well under 1 KiB; the limit follows the count limit.
        var body = await BoundedBody.ReadAsync(request, o.MaxTransactionsPerRequest * 1024L, cancellationToken);
        if (body is null)
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, $"the body is over {o.MaxTransactionsPerRequest * 1024L} bytes", StatusCodes.Status413PayloadTooLarge);
        var (batch, problem) = ReadBatch(body, o.MaxTransactionsPerRequest);
        if (batch is null) return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, problem!);

        var accepted = new List<CardEvent>(batch.Count);
        var refused = new List<TransactionRefusal>();
        for (var i = 0; i < batch.Count; i++)
        {
            var (e, reason) = Tokenize(tokenizer, batch[i]);
            if (e is null) refused.Add(new TransactionRefusal(i, SafeId(batch[i]?.TransactionId), reason!));
            else accepted.Add(e);
        }
        var messages = 0;
        if (accepted.Count > 0)
        {
            var events = JsonSerializer.SerializeToUtf8Bytes(accepted, FraudJson.Options);
            var blob = store.IntakeBlob(tenant, Guid.NewGuid().ToString("n"));
            await store.PutIntakeAsync(blob, events, cancellationToken);
            await queues.PutAsync(FraudStore.TransactionsQueue,
                JsonSerializer.SerializeToUtf8Bytes(new FraudEventsMessage(tenant, blob, accepted.Count, InferenceBlobs.Sha256Hex(events), MessageTraceContext.Current()), FraudJson.Options), cancellationToken: cancellationToken);
            messages = 1;
        }
        if (refused.Count > 0)
        {
            var kept = refused.Select(r => batch[r.Index] is { } t ? t with { CardNumber = null, TransactionId = r.TransactionId } : null).ToArray();
            await PoisonAsync("http", 1, DateTimeOffset.MinValue, FraudRefusalCodes.MalformedTransaction, refused,
                JsonSerializer.SerializeToUtf8Bytes(new { tenant, transactions = kept }, FraudJson.Options));
            await audit.AppendAsync(new AuditEvent(Subject(request.HttpContext.User), FraudAuditActions.EventsRefused, $"tenant/{tenant}", AuditOutcome.Denied,
                request.HttpContext.TraceIdentifier, $"{refused.Count} of {batch.Count} transactions refused at intake"));
        }
        return Results.Accepted(value: new IntakeReceipt(tenant, accepted.Count, messages, refused));
    }

    /// <summary>
    /// A message on <c>fraud-transactions</c> is one micro-batch. A message that can never be scored (not JSON, bad
    /// shape) and the events the scorer refuses go to the poison queue with their reasons; a failure of the
    /// service (no champion deployed, storage) throws so the host retries, and the last attempt poisons the message itself.
    /// </summary>
    [Function("FraudTransactionsQueue")]
    public async Task OnMessage([QueueTrigger(FraudStore.TransactionsQueue)] string body, FunctionContext context, CancellationToken cancellationToken)
    {
        var message = ReceivedMessage.From(body, context.BindingContext.BindingData);
        FraudEventsMessage? parsed;
        try
        {
            parsed = JsonSerializer.Deserialize<FraudEventsMessage>(message.Body.Span, FraudJson.Options);
        }
        catch (JsonException e)
        {
            await PoisonMessageAsync(message, $"the message is not a fraud events message: {Redaction.Digits(e.Message)}");
            return;
        }
        var shape = parsed is null ? "the message is JSON null"
            : !FraudStore.IsValidTenant(parsed.Tenant) ? "tenant must be 1-40 lower-case letters, digits and single inner hyphens"
            : parsed.Blob is null || !FraudStore.IsIntakeBlobOf(parsed.Tenant!, parsed.Blob) ? "blob must name an intake blob of the message's tenant"
            : !InferenceNames.IsSha256Hex(parsed.Sha256) ? "sha256 must be 64 lower-case hex digits"
            : null;
        if (shape is not null)
        {
            await PoisonMessageAsync(message, shape);
            return;
        }

        var tenant = parsed!.Tenant!;
        try
        {
            var bytes = await store.GetIntakeAsync(parsed.Blob!, cancellationToken);
            List<CardEvent?>? events = null;
            string? problem = bytes is null ? "its intake blob is gone"
                : InferenceBlobs.Sha256Hex(bytes) != parsed.Sha256 ? "its intake blob does not match the message's sha256"
                : null;
            if (problem is null)
            {
                try { events = JsonSerializer.Deserialize<List<CardEvent?>>(bytes, FraudJson.Options); }
                catch (JsonException e) { problem = "its intake blob is not a list of events: " + Redaction.Digits(e.Message); }
                if (problem is null && (events is null || events.Count != parsed.Events || events.Any(e => e is null)))
                    problem = $"its intake blob does not hold the {parsed.Events} events the message names";
            }
            if (problem is not null)
            {
                await PoisonMessageAsync(message, problem);
                return;
            }
            // One micro-batch at a time, in order; a retried message finds its committed batches' ids claimed and skips them.
            var offset = 0;
            foreach (var chunk in events!.Chunk(options.Value.MaxEventsPerMessage))
            {
                var batch = chunk.Select(e => e!).ToList();
                var first = offset;
                await scoring.ScoreAsync(batch, result => DeliverAsync(tenant, message, batch, first, result, cancellationToken), cancellationToken);
                offset += batch.Count;
            }
            await store.DeleteIntakeAsync(parsed.Blob!, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException && message.DequeueCount >= _maxDequeueCount)
        {
            // The reason names the failure's type (or our own refusal) only: an exception's message may carry data.
            var why = e is FraudRefusedException r ? $"{r.Code}: {r.Message}" : e.GetType().Name;
            await PoisonMessageAsync(message, $"attempt {message.DequeueCount} of {_maxDequeueCount} failed ({why})", FraudRefusalCodes.ProcessingFailed);
        }
    }

    private async Task DeliverAsync(string tenant, ReceivedMessage message, IReadOnlyList<CardEvent> batch, int offset, BatchResult result, CancellationToken cancellationToken)
    {
        foreach (var alert in result.Alerts)
            await queues.PutAsync(FraudStore.AlertsQueue(tenant), JsonSerializer.SerializeToUtf8Bytes(alert, FraudJson.Options), cancellationToken: cancellationToken);
        if (result.Rejected.Count == 0) return;
        var refusals = result.Rejected.Select(r => new TransactionRefusal(offset + r.Index, SafeId(batch[r.Index].TransactionId), r.Reason)).ToList();
        var kept = result.Rejected.Select(r => batch[r.Index]).ToArray();
        await PoisonAsync(message.Id, message.DequeueCount, message.InsertedAt, FraudRefusalCodes.MalformedTransaction, refusals,
            JsonSerializer.SerializeToUtf8Bytes(new { tenant, events = kept }, FraudJson.Options));
        await audit.AppendAsync(new AuditEvent("platform", FraudAuditActions.EventsRefused, $"tenant/{tenant}", AuditOutcome.Denied, message.Id,
            $"{result.Rejected.Count} of {batch.Count} events refused by the scorer"));
    }

    /// <summary>GET up to <c>?max=</c> (default and limit 32) alerts; each stays leased until acknowledged, then comes back.</summary>
    [Function("ReadFraudAlerts")]
    [RequirePermission(Permissions.FraudAlerts, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    public async Task<IResult> ReadAlerts([HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "fraud/{tenant}/alerts")] HttpRequest request, string tenant,
        CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (TenantProblem(tenant) is { } invalid) return invalid;
        var max = o.MaxAlertsPerRead;
        if (request.Query["max"] is { Count: > 0 } text && (!int.TryParse(text, out max) || max < 1 || max > o.MaxAlertsPerRead))
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, $"max must be within 1..{o.MaxAlertsPerRead}");
        var received = await queues.GetAsync(FraudStore.AlertsQueue(tenant), max, o.AlertLease, cancellationToken);
        var alerts = new List<AlertDelivery>(received.Count);
        foreach (var m in received)
        {
            var alert = JsonSerializer.Deserialize<FraudAlert>(m.Body.Span, FraudJson.Options)
                ?? throw new InvalidDataException("an alert message is JSON null");
            alerts.Add(new AlertDelivery(AckId(m.Id, m.PopReceipt), m.DequeueCount, alert));
        }
        return Results.Ok(new { tenant, alerts, leaseSeconds = o.AlertLease.TotalSeconds });
    }

    /// <summary>POST <c>{"ackIds":[...]}</c>: deletes the alerts read; an ack id whose lease ran out (the alert was read again since) is reported as stale.</summary>
    [Function("AcknowledgeFraudAlerts")]
    [RequirePermission(Permissions.FraudAlerts, ResourceKind = ResourceRef.Tenant, ResourceParameter = "tenant")]
    public async Task<IResult> Acknowledge([HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "fraud/{tenant}/alerts/ack")] HttpRequest request, string tenant,
        CancellationToken cancellationToken)
    {
        if (TenantProblem(tenant) is { } invalid) return invalid;
        var acks = ParseJson<AlertAcks>(await BoundedBody.ReadAsync(request, 256 * 1024, cancellationToken));
        if (acks?.AckIds is not { } ids || ids.Count > 1024 || ids.Any(id => id is null))
            return FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, "the body must be {\"ackIds\": [...]} with at most 1024 ack ids from a read");
        var acknowledged = 0;
        var stale = new List<string>();
        foreach (var id in ids)
        {
            if (TryParseAckId(id, out var messageId, out var receipt) && await queues.DeleteAsync(FraudStore.AlertsQueue(tenant), messageId, receipt, cancellationToken)) acknowledged++;
            else stale.Add(id);
        }
        return Results.Ok(new { tenant, acknowledged, stale });
    }

    /// <summary>400 unless <paramref name="tenant"/> is a fraud tenant name (the route is the only place a tenant comes from).</summary>
    internal static IResult? TenantProblem(string tenant) => FraudStore.IsValidTenant(tenant) ? null
        : FraudRefusedException.Problem(FraudRefusalCodes.BadRequest, "a fraud tenant is 1-40 lower-case letters, digits and single inner hyphens");

    /// <summary>A JSON body as <typeparamref name="T"/>, or null when it is absent, over its limit (null bytes) or not that shape.</summary>
    internal static T? ParseJson<T>(byte[]? body) where T : class
    {
        if (body is not { Length: > 0 }) return null;
        try { return JsonSerializer.Deserialize<T>(body, FraudJson.Options); }
        catch (JsonException) { return null; }
    }

    /// <summary>The event a submission becomes, or why it is refused (never quoting a value).</summary>
    internal static (CardEvent? Event, string? Reason) Tokenize(CardTokenizer tokenizer, TransactionSubmission? t)
    {
        if (t is null) return (null, "the transaction is JSON null");
        if (!tokenizer.TryTokenize(t.CardNumber ?? "", out var token, out var why)) return (null, why);
        var e = new CardEvent(t, t.TransactionId ?? "", token, bank: 0);
        return MicroBatchScorer.Validate(e) is { } problem ? (null, problem) : (e, null);
    }

    /// <summary>The body as a batch of at most <paramref name="max"/> transactions, or why not.</summary>
    internal static (IReadOnlyList<TransactionSubmission?>? Batch, string? Problem) ReadBatch(byte[] body, int max)
    {
        TransactionBatch? batch;
        try { batch = JsonSerializer.Deserialize<TransactionBatch>(body, FraudJson.Options); }
        catch (JsonException e) { return (null, "the body is not a transaction batch: " + Redaction.Digits(e.Message)); }
        if (batch?.Transactions is not { } list) return (null, "the body must be {\"transactions\": [...]}");
        if (list.Count == 0) return (null, "transactions is empty");
        if (list.Count > max) return (null, $"a request carries at most {max} transactions");
        return (list, null);
    }

    // An id is echoed only when the scorer would accept it as an id (no run of 12 digits); otherwise it is masked.
    private static string? SafeId(string? id) => id is null ? null : Redaction.Digits(id.Length > 64 ? id[..64] : id);

    private async Task PoisonMessageAsync(ReceivedMessage message, string reason, string code = FraudRefusalCodes.MalformedTransaction)
    {
        // The body is kept for the operator, with every digit run long enough to be a card number masked.
        var redacted = Encoding.UTF8.GetBytes(Redaction.Digits(Encoding.UTF8.GetString(message.Body.Span)));
        // Audited first, as the partner batches: a crash between the two redelivers the message, never an unaudited poison.
        await audit.AppendAsync(new AuditEvent("platform", FraudAuditActions.EventsRefused, "queue/" + FraudStore.TransactionsQueue, AuditOutcome.Denied, message.Id, $"{code}: {reason}"));
        await PoisonAsync(message.Id, message.DequeueCount, message.InsertedAt, code, [new TransactionRefusal(-1, null, reason)], redacted);
    }

    private Task PoisonAsync(string messageId, int dequeueCount, DateTimeOffset insertedAt, string code, IReadOnlyList<TransactionRefusal> refusals, byte[] body)
    {
        var reason = $"{code}: " + string.Join("; ", refusals.Select(r => r.Index < 0 ? r.Reason : $"#{r.Index}: {r.Reason}"));
        var poison = new PoisonMessage(FraudStore.TransactionsQueue, messageId, dequeueCount, insertedAt, time.GetUtcNow(), reason, body);
        return queues.PutAsync(PoisonQueue, JsonSerializer.SerializeToUtf8Bytes(poison, JsonSerializerOptions.Web));
    }

    private static string AckId(string messageId, string popReceipt) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(messageId + "\n" + popReceipt));

    private static bool TryParseAckId(string ackId, out string messageId, out string popReceipt)
    {
        messageId = popReceipt = "";
        if (ackId.Length > 1024) return false;
        byte[] bytes;
        try { bytes = Base64Url.DecodeFromChars(ackId); }
        catch (FormatException) { return false; }
        var text = Encoding.UTF8.GetString(bytes);
        var split = text.IndexOf('\n');
        if (split <= 0 || split == text.Length - 1) return false;
        (messageId, popReceipt) = (text[..split], text[(split + 1)..]);
        return true;
    }

    internal static string Subject(ClaimsPrincipal user) => user.FindFirst(SecurityClaims.Subject)?.Value ?? "anonymous";
}
