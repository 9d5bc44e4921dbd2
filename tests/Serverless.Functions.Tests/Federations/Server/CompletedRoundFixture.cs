using System.Net;
using System.Text;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;
using Serverless.Model.Import;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>The server tests that share one host and one completed round.</summary>
[CollectionDefinition(Name)]
public sealed class FederationServerCollection : ICollectionFixture<CompletedRoundFixture>
{
    public const string Name = "federation-server";
}

/// <summary>
/// One host, one federation ("ward": secure aggregation and distributed DP on, a hold-out set), four
/// enrolled agents over a generated non-IID cohort, and round 1 played to the end with agent 4 going
/// silent before its training masked input (after sharing its keys). Expensive, so shared by the tests
/// that inspect the outcome.
/// </summary>
public sealed class CompletedRoundFixture : IAsyncLifetime
{
    public const string Federation = "ward";

    public FederationTestHost Host { get; private set; } = null!;
    public string OperatorToken { get; private set; } = "";
    public GeneratedCohort Cohort { get; private set; } = null!;
    public List<TestAgent> Agents { get; } = [];
    public RoundStatus Status { get; private set; } = null!;
    public FederationConfig Config { get; private set; } = null!;

    public static FederationConfig NewConfig(string id, int minClients = 3) => new()
    {
        Id = id,
        Model = new FederationModel { Steps = 8, ConvChannels = 4, LstmHidden = 4 },
        Training = new FederationTraining { LocalEpochs = 1, LearningRate = 0.02, BatchSize = 32 },
        Privacy = new FederationPrivacy { Enabled = true, EpsilonBudget = 20, Delta = 1e-5, NoiseMultiplier = 1.0, ClipNorm = 0.5 },
        SecureAggregation = new FederationSecureAggregation { Enabled = true, RingBits = 32 },
        MinClients = minClients,
        Deadlines = new FederationDeadlines
        {
            AdvertiseKeys = TimeSpan.FromSeconds(90), ShareKeys = TimeSpan.FromSeconds(90),
            MaskedInput = TimeSpan.FromSeconds(60), Unmasking = TimeSpan.FromSeconds(90),
        },
        Promotion = new FederationPromotion { AutoPromote = true, MaxAurocDrop = 1.0 },
        OpenEnrollment = true,   // test agents have many names; the roster itself is tested apart
    };

    public async Task InitializeAsync()
    {
        Host = await FederationTestHost.StartAsync();
        OperatorToken = await Host.TokenAsync("op-1", "operator");
        Cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 5, PatientsPerHospital = 120, Visits = 8, Seed = 11 });
        Config = NewConfig(Federation);
        await Host.Http.CreateFederationAsync(OperatorToken, Config);

        var csv = new StringWriter();
        CohortCsv.Write(Cohort.Hospitals[4].Patients, csv);
        using (var request = new HttpRequestMessage(HttpMethod.Put, RoundRoutes.HoldOut(Federation)))
        {
            request.Headers.Authorization = new("Bearer", OperatorToken);
            request.Content = new StringContent(csv.ToString(), Encoding.UTF8, "text/csv");
            using var response = await Host.Http.SendAsync(request);
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }

        for (var h = 0; h < 4; h++)
        {
            var id = $"hospital-{h + 1}";
            var agent = new TestAgent(Host.Http, Federation, id, TestAgent.IssueCertificate(Host.DataDirectory, id), Cohort.Hospitals[h].Patients);
            await agent.EnrollAsync();
            Agents.Add(agent);
        }
        Agents[3].DropBefore = (RoundStages.Training, RoundPhase.MaskedInput);

        using (var start = await Host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(Federation), OperatorToken, new StartRoundRequest("fixture")))
        {
            Assert.True(start.StatusCode == HttpStatusCode.Accepted, await start.Content.ReadAsStringAsync());
            Assert.Equal("1", start.Headers.GetValues("X-Round").Single());
            var body = await start.ReadAsync<System.Text.Json.JsonElement>();
            Assert.Equal(RoundRoutes.InstanceId(Federation, 1), body.GetProperty("id").GetString());
            Assert.Contains($"/instances/{RoundRoutes.InstanceId(Federation, 1)}", body.GetProperty("statusQueryGetUri").GetString());
            Assert.Equal(body.GetProperty("statusQueryGetUri").GetString(), start.Headers.Location?.ToString());
        }
        await Task.WhenAll(Agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(3))));
        Status = await WaitForRoundAsync(Host.Http, OperatorToken, Federation, 1, TimeSpan.FromMinutes(2));
        await WaitUntilNotRunningAsync(Host, RoundRoutes.InstanceId(Federation, 1), TimeSpan.FromMinutes(2));
    }

    /// <summary>Waits until the round's orchestration instance has finished (its last activities included), at most <paramref name="timeout"/>.</summary>
    public static async Task WaitUntilNotRunningAsync(FederationTestHost host, string instanceId, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        while (true)
        {
            var instance = await host.Durable.GetInstanceAsync(instanceId, getInputsAndOutputs: false);
            if (instance is null || !instance.IsRunning) return;
            if (DateTime.UtcNow >= until) throw new TimeoutException($"orchestration {instanceId} still {instance.RuntimeStatus} after {timeout}");
            await Task.Delay(200);
        }
    }

    /// <summary>Polls the round's status until it is over.</summary>
    public static async Task<RoundStatus> WaitForRoundAsync(HttpClient http, string token, string federation, int round, TimeSpan timeout)
    {
        var until = DateTime.UtcNow + timeout;
        RoundStatus? status = null;
        while (DateTime.UtcNow < until)
        {
            try
            {
                using var response = await http.SendAsync(HttpMethod.Get, RoundRoutes.Round(federation, round), token);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    status = await response.ReadAsync<RoundStatus>();
                    if (status.Phase is RoundPhase.Completed or RoundPhase.Failed or RoundPhase.Refused) return status;
                }
            }
            catch (HttpRequestException)
            {
                // host restarting
            }
            await Task.Delay(300);
        }
        throw new TimeoutException($"Round {round} of {federation} did not finish in {timeout}; last status: {status?.Phase} {status?.Reason}");
    }

    public async Task DisposeAsync()
    {
        foreach (var a in Agents) a.Dispose();
        await Host.DisposeAsync();
    }
}
