using System.Net;
using Serverless.Federation.Rounds;
using Serverless.Model.Data;

namespace Serverless.Functions.Tests.Federations.Server;

/// <summary>
/// A participant posts malformed secure-aggregation messages (a null share list, a null share, a share
/// that claims another sender): each is refused at intake with a 400 ProblemDetails and nothing is
/// stored, so the round completes with the other clients and only the sender is left out.
/// </summary>
public sealed class RoundIntakeTests : IAsyncLifetime
{
    private FederationTestHost _host = null!;

    public async Task InitializeAsync() => _host = await FederationTestHost.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task A_null_share_is_refused_with_400_and_the_round_completes_without_its_sender()
    {
        const string fed = "intake";
        var op = await _host.TokenAsync("op-intake", "operator");
        var config = CompletedRoundFixture.NewConfig(fed) with
        {
            Deadlines = new FederationDeadlines
            {
                // ShareKeys and AdvertiseKeys are short: the statistics ShareKeys phase and the training stage's
                // AdvertiseKeys wait for the silent sender until then.
                AdvertiseKeys = TimeSpan.FromSeconds(40), ShareKeys = TimeSpan.FromSeconds(20),
                MaskedInput = TimeSpan.FromSeconds(90), Unmasking = TimeSpan.FromSeconds(90),
            },
        };
        await _host.Http.CreateFederationAsync(op, config);
        var cohort = CohortGenerator.Generate(new CohortOptions { Hospitals = 4, PatientsPerHospital = 80, Visits = 8, Seed = 21 });
        var agents = new List<TestAgent>();
        try
        {
            for (var h = 0; h < 4; h++)
            {
                var id = $"clinic-{h + 1}";
                var agent = new TestAgent(_host.Http, fed, id, TestAgent.IssueCertificate(_host.DataDirectory, id), cohort.Hospitals[h].Patients);
                await agent.EnrollAsync();
                agents.Add(agent);
            }
            var bad = agents[3];
            bad.Malformed = (RoundStages.Statistics, RoundPhase.ShareKeys,
            [
                """{"message":{"clientId":{id},"shares":null,"selfMaskCommitment":"AAAA"}}""",
                """{"message":{"clientId":{id},"shares":null}}""",
                """{"message":{"clientId":{id},"shares":[null],"selfMaskCommitment":"AAAA"}}""",
                """{"message":{"clientId":{id},"shares":[{"from":1,"to":2,"ciphertext":"AAAA"}],"selfMaskCommitment":"AAAA"}}""",
                """{"message":{"clientId":{id},"shares":[{"from":{id},"to":{id},"ciphertext":"AAAA"}],"selfMaskCommitment":"AAAA"}}""",
            ]);
            using (var start = await _host.Http.SendAsync(HttpMethod.Post, RoundRoutes.Rounds(fed), op))
                Assert.True(start.StatusCode == HttpStatusCode.Accepted, await start.Content.ReadAsStringAsync());
            await Task.WhenAll(agents.Select(a => a.RunRoundAsync(1, TimeSpan.FromMinutes(4))));

            Assert.Equal(5, bad.MalformedResponses.Count);
            Assert.All(bad.MalformedResponses, r =>
            {
                Assert.True(r.Status == HttpStatusCode.BadRequest, $"{(int)r.Status} {r.Body}");
                Assert.Equal("application/problem+json", r.MediaType);
            });
            Assert.Contains("shares[0] is null", bad.MalformedResponses[2].Body);
            Assert.Contains("your own id", bad.MalformedResponses[3].Body);
            // Nothing of the sender was stored: a later identical post would not be a duplicate, and the round never saw it.
            var status = await CompletedRoundFixture.WaitForRoundAsync(_host.Http, op, fed, 1, TimeSpan.FromMinutes(2));
            Assert.True(status.Phase == RoundPhase.Completed, $"{status.Phase}: {status.Reason}");
            // Only the sender is left out: dropped where it sent nothing valid (and, silent from then on, from the training stage too).
            Assert.All(status.Dropouts, d => Assert.True(d.ClientId == "clinic-4", string.Join("; ", status.Dropouts)));
            Assert.Contains(new RoundDropout("clinic-4", RoundStages.Statistics, RoundPhase.ShareKeys), status.Dropouts);
            Assert.Empty(status.Excluded);
            Assert.Equal(3, status.Metrics["contributors"]);
            Assert.Equal("v1", status.NewVersion);
        }
        finally
        {
            foreach (var a in agents) a.Dispose();
        }
    }
}
