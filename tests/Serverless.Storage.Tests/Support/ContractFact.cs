using Serverless.Testing;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Serverless.Storage.Tests.Support;

/// <summary>Marks a contract subclass that needs a server from scripts/test.sh (Azurite).</summary>
public interface IServerBackedTests;

/// <summary>
/// A fact of a contract base class: it runs for every backend subclass; in a subclass marked
/// <see cref="IServerBackedTests"/> it behaves as <c>[ServerFact]</c> (skipped only with SERVERLESS_TESTS_LOCAL_ONLY=1,
/// otherwise a missing server fails the test).
/// </summary>
[XunitTestCaseDiscoverer("Serverless.Storage.Tests.Support.ContractFactDiscoverer", "Serverless.Storage.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class ContractFactAttribute : FactAttribute;

public sealed class ContractFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        var testClass = testMethod.TestClass.Class.ToRuntimeType();
        var display = discoveryOptions.MethodDisplayOrDefault();
        var displayOptions = discoveryOptions.MethodDisplayOptionsOrDefault();
        if (TestServers.LocalOnly && typeof(IServerBackedTests).IsAssignableFrom(testClass))
        {
            yield return new XunitSkippedDataRowTestCase(diagnosticMessageSink, display, displayOptions, testMethod,
                "SERVERLESS_TESTS_LOCAL_ONLY=1: server-backed test skipped in a local run");
            yield break;
        }
        yield return new XunitTestCase(diagnosticMessageSink, display, displayOptions, testMethod);
    }
}
