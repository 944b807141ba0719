namespace LlmEmbedder.Retrieval;

/// <summary>Search results and the metrics computed from them.</summary>
public sealed record RetrievalEvaluationResult(SearchResult Search, RetrievalMetricsResult Metrics);

/// <summary>
/// Evaluation once the texts are encoded: exact search of every query of a dataset over its corpus, then the metrics.
/// The one path shared by the eval command and by training's before/after report.
/// </summary>
public static class RetrievalEvaluation
{
    /// <summary>The reference's <c>--hits</c>: how many corpus rows are retrieved per query.</summary>
    public const int DefaultHits = 200;

    /// <summary>Fewer hits than the largest cutoff would compute the deeper metrics on a truncated list without notice.</summary>
    public static void CheckHits(int hits, IReadOnlyList<int> cutoffs)
    {
        if (cutoffs.Count > 0 && hits < cutoffs.Max())
            throw new EmbedderException($"hits ({hits}) is smaller than the largest cutoff ({cutoffs.Max()}); retrieve at least as many rows as the deepest metric looks at");
    }

    /// <param name="queryEmbeddings">[dataset.Queries.Count, dimension] row-major, in query order.</param>
    /// <param name="corpusEmbeddings">[dataset.CorpusTexts.Count, dimension] row-major, in corpus order.</param>
    /// <param name="hits">Rows retrieved per query; at least the largest cutoff, else the deeper metrics would be
    /// computed on a truncated list without notice.</param>
    public static RetrievalEvaluationResult Run(
        RetrievalDataset dataset, float[] queryEmbeddings, float[] corpusEmbeddings, int dimension,
        int hits = DefaultHits, IReadOnlyList<string>? metrics = null, IReadOnlyList<int>? cutoffs = null,
        ExactSearchOptions? options = null, CancellationToken cancellationToken = default)
    {
        cutoffs ??= RetrievalMetrics.DefaultCutoffs;
        CheckHits(hits, cutoffs);
        if (queryEmbeddings.Length != (long)dataset.Queries.Count * dimension)
            throw new ArgumentException($"{queryEmbeddings.Length} query values are not {dataset.Queries.Count} queries x {dimension}", nameof(queryEmbeddings));
        if (corpusEmbeddings.Length != (long)dataset.CorpusTexts.Count * dimension)
            throw new ArgumentException($"{corpusEmbeddings.Length} corpus values are not {dataset.CorpusTexts.Count} rows x {dimension}", nameof(corpusEmbeddings));

        var search = ExactSearch.Search(queryEmbeddings, corpusEmbeddings, dimension, hits, options, cancellationToken);
        return new RetrievalEvaluationResult(search, RetrievalMetrics.Compute(dataset, search, metrics, cutoffs));
    }
}
