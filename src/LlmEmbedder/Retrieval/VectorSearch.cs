namespace LlmEmbedder.Retrieval;

/// <summary>Which search finds the top-k rows: exact (brute force, the default) or approximate (an HNSW graph).</summary>
public enum SearchIndexKind
{
    Exact,
    Hnsw,
}

/// <summary>The one place that chooses between <see cref="ExactSearch"/> and <see cref="HnswSearch"/> (--index).</summary>
public static class VectorSearch
{
    public static readonly IReadOnlyList<string> Names = ["exact", "hnsw"];

    public static SearchIndexKind Parse(string name) => name.ToLowerInvariant() switch
    {
        "exact" or "flat" => SearchIndexKind.Exact,
        "hnsw" => SearchIndexKind.Hnsw,
        _ => throw new EmbedderException($"unknown index '{name}' (expected exact or hnsw)"),
    };

    public static SearchResult Search(SearchIndexKind kind, float[] queries, float[] corpus, int dimension, int k, CancellationToken cancellationToken = default) =>
        kind switch
        {
            SearchIndexKind.Exact => ExactSearch.Search(queries, corpus, dimension, k, cancellationToken: cancellationToken),
            SearchIndexKind.Hnsw => HnswSearch.Search(queries, corpus, dimension, k, cancellationToken: cancellationToken),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
}
