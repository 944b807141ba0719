namespace LlmEmbedder.Training.Losses;

/// <summary>
/// How a query and a key are scored (the reference's <c>--dense_metric</c>, docs/REFERENCE.md §1).
/// </summary>
public enum DenseMetric
{
    /// <summary>Cosine: both sides L2-normalised, inner product divided by <c>cos_temperature</c>.</summary>
    Cos,

    /// <summary>Plain inner product, no normalisation, no temperature.</summary>
    Ip,

    /// <summary>
    /// Trains exactly like <see cref="Ip"/>: the reference scores by inner product in its loss and uses
    /// L2 distance only when it builds the search index.
    /// </summary>
    L2,
}
