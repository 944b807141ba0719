using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Retrieval.Scoring;

/// <summary>One query and the texts to score against it.</summary>
public sealed record PairGroup(string Query, IReadOnlyList<string> Texts);

/// <summary>Progress of a scoring pass: pairs (cross-encoder) or texts (embedder) done of the total.</summary>
public sealed record ScoringProgress(string What, int Done, int Total);

/// <summary>
/// Scores (query, text) pairs, higher meaning more relevant: the teacher of distillation (teacher_scores), and the
/// judge of mining's margins. Two kinds: a cross-encoder reads each pair together; an embedder scores the
/// similarity of the query's and the text's embeddings.
/// </summary>
public interface IPairScorer : IDisposable
{
    /// <summary>What the scores are, for people ("cross-encoder logits", "cosine similarity of ...").</summary>
    string Description { get; }

    /// <summary>scores[g][t] is the score of (groups[g].Query, groups[g].Texts[t]).</summary>
    float[][] Score(IReadOnlyList<PairGroup> groups, IProgress<ScoringProgress>? progress = null);
}

/// <summary>A reranker's score of each pair: the raw logit (FlagEmbedding's compute_score), or its sigmoid.</summary>
public sealed class CrossEncoderScorer(CrossEncoder model, int batchSize, bool sigmoid) : IPairScorer
{
    public CrossEncoder Model { get; } = model;

    public string Description => sigmoid ? "cross-encoder sigmoid(logit)" : "cross-encoder logits";

    public float[][] Score(IReadOnlyList<PairGroup> groups, IProgress<ScoringProgress>? progress = null)
    {
        var pairs = groups.SelectMany(g => g.Texts.Select(text => (g.Query, text))).ToList();
        var flat = Model.Score(pairs, batchSize, sigmoid,
            progress is null ? null : new InlineProgress<int>(done => progress.Report(new ScoringProgress("pairs", done, pairs.Count))));
        var result = new float[groups.Count][];
        int next = 0;
        for (int g = 0; g < groups.Count; g++)
        {
            result[g] = flat.AsSpan(next, groups[g].Texts.Count).ToArray();
            next += groups[g].Texts.Count;
        }
        return result;
    }

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// A bi-encoder as teacher: the inner product of the query's embedding (query instruction) and the text's (key
/// instruction), encoded as the model's spec says; for the cos metric the embeddings are L2-normalised, so the score
/// is their cosine similarity, without the training temperature. Each distinct text is encoded once.
/// </summary>
public sealed class EmbeddingPairScorer(CachingEncoder encoder, Instruction? instruction, DenseMetric metric, int batchSize) : IPairScorer
{
    public string Description => metric == DenseMetric.Cos ? "cosine similarity of the embeddings" : "inner product of the embeddings";

    public float[][] Score(IReadOnlyList<PairGroup> groups, IProgress<ScoringProgress>? progress = null)
    {
        var queries = groups.Select(g => g.Query).Distinct(StringComparer.Ordinal).ToArray();
        var texts = groups.SelectMany(g => g.Texts).Distinct(StringComparer.Ordinal).ToArray();
        var encodingProgress = progress is null ? null : new InlineProgress<EncodingProgress>(p => progress.Report(new ScoringProgress(p.What, p.Done, p.Total)));
        var queryVectors = encoder.Encode(queries, EmbeddingRole.Query, instruction?.Query ?? "", null, batchSize, "queries", encodingProgress);
        var textVectors = encoder.Encode(texts, EmbeddingRole.Key, instruction?.Key ?? "", null, batchSize, "texts", encodingProgress);
        var queryRow = Rows(queries);
        var textRow = Rows(texts);
        return groups.Select(g => g.Texts.Select(text =>
            Dot(queryVectors.Values, queryRow[g.Query], textVectors.Values, textRow[text], queryVectors.Dimension)).ToArray()).ToArray();
    }

    /// <summary>The inner product of row <paramref name="a"/> of <paramref name="left"/> and row <paramref name="b"/> of <paramref name="right"/>, summed in double.</summary>
    public static float Dot(float[] left, int a, float[] right, int b, int dimension)
    {
        double sum = 0;
        for (int i = 0; i < dimension; i++) sum += (double)left[(long)a * dimension + i] * right[(long)b * dimension + i];
        return (float)sum;
    }

    private static Dictionary<string, int> Rows(string[] texts)
    {
        var rows = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < texts.Length; i++) rows[texts[i]] = i;
        return rows;
    }

    public void Dispose() => encoder.Dispose();
}
