namespace LlmEmbedder.Tests;

/// <summary>
/// Test classes that train or run large models: they run one after another (each already uses both cores),
/// while light classes run beside them. They share one <see cref="TrainedEmbeddedDefault"/>.
/// </summary>
[CollectionDefinition(Name)]
public sealed class HeavyTests : ICollectionFixture<TrainedEmbeddedDefault>
{
    public const string Name = "Heavy (CPU-bound, one at a time)";
}
