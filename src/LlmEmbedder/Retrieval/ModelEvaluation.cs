using System.Diagnostics;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Retrieval;

/// <summary>How the eval command evaluates a model on a dataset.</summary>
/// <param name="Instruction">Prefixes for queries and corpus rows; null for none.</param>
/// <param name="KeyTemplate">How the dataset's corpus rows were rendered (recorded with cached embeddings).</param>
/// <param name="Dimensions">Search with the first N dimensions of each embedding (normalised again when the model
/// normalises); null: all of them.</param>
public sealed record EvaluationSettings(
    Instruction? Instruction,
    string KeyTemplate,
    IReadOnlyList<string> Metrics,
    IReadOnlyList<int> Cutoffs,
    int Hits = RetrievalEvaluation.DefaultHits,
    int BatchSize = 256,
    SearchIndexKind Index = SearchIndexKind.Exact,
    int? Dimensions = null)
{
    /// <summary>Rejects settings that could only fail after encoding: unknown metrics, bad cutoffs, too few hits.</summary>
    public void Validate()
    {
        RetrievalEvaluation.CheckHits(Hits, Cutoffs);
        if (BatchSize < 1) throw new EmbedderException($"batch size must be positive, got {BatchSize}");
        RetrievalMetrics.Compute([[0]], [[0]], Metrics, Cutoffs);
    }
}

/// <summary>The evaluation of one model, with where its time went and the embeddings it searched.</summary>
public sealed record ModelEvaluationResult(
    RetrievalEvaluationResult Evaluation,
    int Dimension,
    bool CorpusFromCache,
    bool QueriesFromCache,
    TimeSpan EncodingTime,
    TimeSpan SearchTime,
    EncodedTexts Queries,
    EncodedTexts Corpus);

/// <summary>
/// One model on one dataset: encode the queries and the corpus (through the embedding cache), search (exact by
/// default, HNSW on request), compute the metrics. The metric rules are <see cref="RetrievalMetrics"/>'.
/// </summary>
public static class ModelEvaluation
{
    public static ModelEvaluationResult Run(
        CachingEncoder encoder, RetrievalDataset dataset, EvaluationSettings settings,
        IProgress<EncodingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        settings.Validate();
        var clock = Stopwatch.StartNew();
        var corpus = encoder.Encode(dataset.CorpusTexts, EmbeddingRole.Key, settings.Instruction?.Key ?? "", settings.KeyTemplate, settings.BatchSize, "corpus", progress);
        var queries = encoder.Encode(dataset.QueryTexts, EmbeddingRole.Query, settings.Instruction?.Query ?? "", null, settings.BatchSize, "queries", progress);
        if (queries.Dimension != corpus.Dimension)
            throw new EmbedderException($"query embeddings have {queries.Dimension} dimensions but corpus embeddings {corpus.Dimension} (a stale cache entry?)");
        var encodingTime = clock.Elapsed;
        if (settings.Dimensions is { } kept)
        {
            // The cache holds whole embeddings; every size is cut from them.
            EmbeddingDimensions.Check(kept, corpus.Dimension, "--dimensions");
            corpus = corpus with { Values = EmbeddingDimensions.Truncate(corpus.Values, corpus.Dimension, kept, encoder.Normalizes), Dimension = kept };
            queries = queries with { Values = EmbeddingDimensions.Truncate(queries.Values, queries.Dimension, kept, encoder.Normalizes), Dimension = kept };
        }

        clock.Restart();
        var evaluation = settings.Index == SearchIndexKind.Exact
            ? RetrievalEvaluation.Run(dataset, queries.Values, corpus.Values, corpus.Dimension, settings.Hits, settings.Metrics, settings.Cutoffs,
                cancellationToken: cancellationToken)
            : Approximate(dataset, queries.Values, corpus.Values, corpus.Dimension, settings, cancellationToken);
        return new ModelEvaluationResult(evaluation, corpus.Dimension, corpus.FromCache, queries.FromCache, encodingTime, clock.Elapsed, queries, corpus);
    }

    private static RetrievalEvaluationResult Approximate(
        RetrievalDataset dataset, float[] queries, float[] corpus, int dimension, EvaluationSettings settings, CancellationToken cancellationToken)
    {
        var search = VectorSearch.Search(settings.Index, queries, corpus, dimension, settings.Hits, cancellationToken);
        return new RetrievalEvaluationResult(search, RetrievalMetrics.Compute(dataset, search, settings.Metrics, settings.Cutoffs));
    }
}
