using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>The fixture dataset with embeddings chosen so that every ranking can be worked out on paper.</summary>
public sealed class RetrievalEvaluationHandComputedTests
{
    private const double D1 = 1.0, D2 = 0.63092975357145743, D3 = 0.5;

    private static RetrievalDataset FixtureDataset()
    {
        var fixtures = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Retrieval", "Fixtures", "flagembedding");
        return RetrievalDataset.LoadFlagEmbedding(Path.Combine(fixtures, "eval.jsonl"), Path.Combine(fixtures, "corpus.jsonl"));
    }

    [Fact]
    public void OneHotCorpusAndMixedQueries()
    {
        var dataset = FixtureDataset(); // 5 corpus rows; query 0 → {0}, query 1 → {1, 0}, queries 2 and 3 without positives
        // Corpus row i = e_i. Query 0 = e_0: ranking 0, then rows 1..4 tied at 0 in index order.
        // Query 1 = 0.8 e_2 + 0.6 e_1: ranking 2, 1, then 0, 3, 4 tied at 0: its hits are at ranks 2 and 3.
        float[] corpus = [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        float[] queries = [1, 0, 0, 0, 0, 0, 0.6f, 0.8f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];

        var (search, metrics) = RetrievalEvaluation.Run(dataset, queries, corpus, dimension: 5, hits: 5, cutoffs: [1, 5]);

        Assert.Equal(new[] { 0, 1, 2, 3, 4 }, search.Indices[0]);
        Assert.Equal(new[] { 2, 1, 0, 3, 4 }, search.Indices[1]);
        Assert.Equal(2, metrics.QueriesEvaluated);
        Assert.Equal(2, metrics.QueriesWithoutPositives);
        Assert.Equal((1 + 0) / 2.0, metrics["mrr@1"], 1e-12);
        Assert.Equal((1 + 0.5) / 2, metrics["mrr@5"], 1e-12);
        Assert.Equal((1 + 0) / 2.0, metrics["recall@1"], 1e-12);
        Assert.Equal((1 + 1) / 2.0, metrics["recall@5"], 1e-12);
        Assert.Equal((1 + 0) / 2.0, metrics["ndcg@1"], 1e-12);
        Assert.Equal((1 + (D2 + D3) / (D1 + D2)) / 2, metrics["ndcg@5"], 1e-12);
    }

    [Fact]
    public void FewerHitsThanTheLargestCutoffIsAnError()
    {
        var dataset = FixtureDataset();
        var error = Assert.Throws<EmbedderException>(() =>
            RetrievalEvaluation.Run(dataset, new float[4 * 2], new float[5 * 2], dimension: 2, hits: 50));
        Assert.Equal("hits (50) is smaller than the largest cutoff (100); retrieve at least as many rows as the deepest metric looks at", error.Message);
    }
}
