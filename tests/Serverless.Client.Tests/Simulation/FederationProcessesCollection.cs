namespace Serverless.Client.Tests.Simulation;

/// <summary>Tests that run the function host and agent processes: one at a time (two cores), never beside each other.</summary>
[CollectionDefinition(Name)]
public sealed class FederationProcessesCollection
{
    public const string Name = "federation processes";
}
