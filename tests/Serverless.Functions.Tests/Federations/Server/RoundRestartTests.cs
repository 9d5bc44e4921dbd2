using System.Net;
using Serverless.Federation.Rounds;
using Serverless.Functions.Tests.App;
using Serverless.Model.Data;
using Serverless.Security;
using Serverless.Testing;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// The host process is killed in the middle of a round (clients have advertised their training keys)
/// and started again on the same data directory: the durable round resumes where its history ends and
/// completes with every client, nothing lost.
/// </summary>
public sealed class RoundRestartTests : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("federation-restart-").FullName;
    private LocalHostProcess? _app;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await StopAsync();
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    [Fact]
    public async Task A_round_survives_a_host_kill_between_phases_and_completes()
    {
        DevTools.CreateCertificateAuthority(_dataDirectory);
        var operatorToken = await DevTools.IssueTokenAsync(_dataDirectory, "op-restart", ["operator"]);
        var http = await StartAsync();
        const string fed = "restart";
        var config = CompletedRoundFixture.NewConfig(fed) with
        {
            Deadlines = new FederationDeadlines
            {
                AdvertiseKeys = TimeSpan.FromMinutes(3), ShareKeys = TimeSpan.FromMinutes(3), MaskedInput = TimeSpan.FromMinutes(3), Unmasking = TimeSpan.FromMinutes(3),
            },
        };
        await http.CreateFederationAsync(operatorToken, config);
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 3, PatientsPerHospital = 80, Visits = 8, Seed = 5 });
        var agents = new List<TestAgent>();
        try
        {
            for (var h = 0; h < 3; h++)
            {
                var id = $"site-{h}";
                var agent = new TestAgent(http, fed, id, TestAgent.IssueCertificate(_dataDirectory, id), cohort.Hospitals[h].Patients);
                await agent.EnrollAsync();
                agents.Add(agent);
            }
            using (var start = await http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(fed), operatorToken))
                Assert.True(start.StatusCode == HttpStatusCode.Accepted, await start.Content.ReadAsStringAsync());

            // Five statistics phases (the consistency check included) and the training keys, then stop answering.
            await Task.WhenAll(agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(2), stopAfter: 6)));
            Assert.All(agents, a => Assert.Equal((RoundStages.Training, RoundPhase.AdvertiseKeys), a.Answered[^1]));

            await StopAsync();   // SIGKILL: no clean shutdown
            http.Dispose();
            http = await StartAsync();
            foreach (var a in agents) a.Http = http;

            var tasks = await Task.WhenAll(agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(3))));
            var status = await CompletedRoundFixture.WaitForRoundAsync(http, operatorToken, fed, 1, TimeSpan.FromMinutes(2));
            Assert.True(status.Phase == RoundPhase.Completed, $"{status.Phase}: {status.Reason}");
            Assert.Empty(status.Dropouts);
            Assert.Equal("v1", status.NewVersion);
            Assert.Equal(3, status.Metrics["contributors"]);
            Assert.All(agents, a => Assert.Equal((RoundStages.Training, RoundPhase.Unmasking), a.Answered[^1]));
            Assert.All(tasks, t => Assert.Equal(ClientAction.Done, t!.Action));
        }
        finally
        {
            foreach (var a in agents) a.Dispose();
            http.Dispose();
        }
    }

    private async Task<HttpClient> StartAsync()
    {
        _app = await LocalHostProcess.StartAsync(FunctionAppHost.LocalHostDll, FunctionAppHost.AppDirectory, _dataDirectory);
        return new HttpClient { BaseAddress = _app.Address, Timeout = TimeSpan.FromMinutes(1) };
    }

    /// <summary>SIGKILL of the host and its worker: no clean shutdown.</summary>
    private async Task StopAsync()
    {
        if (_app is null) return;
        await _app.DisposeAsync();
        _app = null;
    }
}
