namespace Serverless.Host;

/// <summary>The host cannot start: its message is one line for the CLI, with no request data in it.</summary>
public sealed class HostStartException(string message) : Exception(message);
