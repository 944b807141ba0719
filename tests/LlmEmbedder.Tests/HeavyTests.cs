namespace LlmEmbedder.Tests;

/// <summary>
/// Test classes that train or run large models: they run one after another (each already uses both cores),
/// while light classes run beside them.
/// </summary>
[CollectionDefinition(Name)]
public sealed class HeavyTests
{
    public const string Name = "Heavy (CPU-bound, one at a time)";
}
