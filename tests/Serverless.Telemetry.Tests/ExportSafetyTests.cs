using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Microsoft.Extensions.Logging;
using Serverless.Telemetry.Collection;

namespace Serverless.Telemetry.Tests;

/// <summary>
/// The allow-list end to end: spans, logs and metrics carrying values go through the real pipeline (SDK, OTLP/HTTP
/// protobuf exporter) to the receiver, which decodes them; what is not allowed never arrives.
/// </summary>
public sealed class ExportSafetyTests
{
    private const string PatientId = "PAT-48213977";
    private const string Glucose = "7.913";
    private const string Card = "4111111111111111";

    [Fact]
    public async Task Disallowed_attributes_status_texts_log_values_exceptions_and_metric_tags_are_not_exported()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using (var telemetry = TelemetrySetup.Start("safety-test", export: TelemetryExport.ToReceiver(receiver.Endpoint))!)
        {
            using var loggers = LoggerFactory.Create(telemetry.AddLogging);
            var log = loggers.CreateLogger("Serverless.Safety");
            using (var span = ServerlessTelemetry.Source.StartActivity("safety span"))
            {
                Assert.NotNull(span);
                span.SetTag("serverless.round", 3);
                span.SetTag("patient.id", PatientId);
                span.SetTag("url.query", "code=" + Card);
                span.SetBaggage("glucose", Glucose);
                span.SetStatus(ActivityStatusCode.Error, $"glucose {Glucose} of {PatientId} out of range");
#pragma warning disable CA2254 // the template is the test's subject
                log.LogWarning(new InvalidDataException($"card {Card} refused"), "patient {PatientId} had {Glucose} in round {Round}", PatientId, Glucose, 3);
#pragma warning restore CA2254
            }
            ServerlessTelemetry.SecAggBytes.Add(100, new KeyValuePair<string, object?>("serverless.phase", "training/MaskedInput"),
                new KeyValuePair<string, object?>("patient.id", PatientId));
            telemetry.Flush();
            loggers.Dispose();
        }

        var span1 = Assert.Single(receiver.Spans, s => s.Name == "safety span");
        Assert.Equal("3", span1.Attribute("serverless.round"));
        Assert.Null(span1.Attribute("patient.id"));
        Assert.Null(span1.Attribute("url.query"));
        Assert.Equal(2, span1.StatusCode);

        var record = Assert.Single(receiver.Logs, l => l.Category == "Serverless.Safety");
        Assert.Equal("patient {PatientId} had {Glucose} in round {Round}", record.Body);
        Assert.Equal("3", record.Attributes["Round"]);
        Assert.Equal(typeof(InvalidDataException).FullName, record.Attributes["exception.type"]);
        Assert.Equal(span1.TraceId, record.TraceId);
        Assert.Equal(span1.SpanId, record.SpanId);

        // Cumulative: every export (periodic, then the flush) repeats the one point.
        var points = receiver.Metrics.Where(m => m.Metric == "serverless.secagg.bytes").ToList();
        Assert.NotEmpty(points);
        Assert.All(points, point =>
        {
            Assert.Equal(100, point.Value);
            Assert.Equal("training/MaskedInput", point.Attributes["serverless.phase"]);
            Assert.False(point.Attributes.ContainsKey("patient.id"));
        });

        foreach (var secret in new[] { PatientId, Glucose, Card })
            Assert.DoesNotContain(receiver.Strings, s => s.Contains(secret, StringComparison.Ordinal));
    }

    [Fact]
    public void Nothing_is_started_unless_an_exporter_is_configured()
    {
        Assert.Null(TelemetrySetup.Start("off", export: TelemetryExport.From(_ => null)));
        Assert.False(TelemetryExport.From(_ => " ").Enabled);
        Assert.True(TelemetryExport.From(name => name == TelemetryExport.OtlpEndpointSetting ? "http://127.0.0.1:4318" : null).Otlp);
        Assert.Equal("InstrumentationKey=x", TelemetryExport.From(name => name == TelemetryExport.AzureMonitorSetting ? "InstrumentationKey=x" : null).AzureMonitorConnectionString);
    }

    [Fact]
    public async Task The_receiver_refuses_other_media_types_and_bodies_that_are_not_OTLP()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        using var http = new HttpClient { BaseAddress = receiver.Endpoint };
        using var json = await http.PostAsync("v1/traces", new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, json.StatusCode);
        var garbage = new ByteArrayContent([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
        garbage.Headers.ContentType = new MediaTypeHeaderValue("application/x-protobuf");
        using var bad = await http.PostAsync("v1/traces", garbage);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("application/problem+json", bad.Content.Headers.ContentType?.MediaType);
        Assert.Empty(receiver.Spans);
    }
}
