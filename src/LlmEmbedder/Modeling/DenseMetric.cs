namespace LlmEmbedder.Modeling;

/// <summary>
/// How a query and a key are scored (the reference's <c>--dense_metric</c>, docs/REFERENCE.md §1): it decides whether
/// embeddings are L2-normalised and which similarity a search and a sentence-transformers model use.
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

public static class DenseMetrics
{
    public static readonly IReadOnlyList<string> Names = ["cos", "ip", "l2"];

    public static DenseMetric Parse(string name) => name switch
    {
        "cos" => DenseMetric.Cos,
        "ip" => DenseMetric.Ip,
        "l2" => DenseMetric.L2,
        _ => throw new EmbedderException($"dense metric '{name}': expected cos, ip or l2"),
    };

    public static string Name(this DenseMetric metric) => metric.ToString().ToLowerInvariant();

    /// <summary>Whether embeddings are L2-normalised (only for cosine, as in the reference).</summary>
    public static bool Normalizes(this DenseMetric metric) => metric == DenseMetric.Cos;

    /// <summary>sentence-transformers' similarity_fn_name for this metric.</summary>
    public static string SimilarityFunctionName(this DenseMetric metric) => metric switch
    {
        DenseMetric.Cos => "cosine",
        DenseMetric.Ip => "dot",
        _ => "euclidean",
    };
}
