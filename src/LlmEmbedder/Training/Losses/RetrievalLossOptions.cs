using LlmEmbedder.Modeling;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// The arguments of the reference that shape the training loss (docs/REFERENCE.md §1), with its defaults.
/// A per-task training config (<c>use_train_config</c>) is a different instance of this record.
/// </summary>
public sealed record RetrievalLossOptions
{
    public DenseMetric DenseMetric { get; init; } = DenseMetric.Cos;

    public double CosTemperature { get; init; } = 0.01;

    public double ContrastiveWeight { get; init; } = 0.2;

    public double DistillWeight { get; init; } = 1.0;

    public double TeacherTemperature { get; init; } = 1.0;

    public double StudentTemperature { get; init; } = 1.0;

    public bool StableDistill { get; init; }

    /// <summary>Null: the loss of the whole embeddings only; else the Matryoshka sum over their prefixes.</summary>
    public MatryoshkaOptions? Matryoshka { get; init; }
}
