using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>Each expected value is written out from the metric's definition for a list small enough to rank by eye.</summary>
public sealed class RetrievalMetricsHandComputedTests
{
    private const double Tolerance = 1e-12;

    // 1 / log2(i + 1) for ranks 1..4, written as the textbook constants.
    private const double D1 = 1.0, D2 = 0.63092975357145743, D3 = 0.5, D4 = 0.43067655807339306;

    private static RetrievalMetricsResult One(int[] relevant, int[] ranked, params int[] cutoffs) =>
        RetrievalMetrics.Compute([relevant], [ranked], ["mrr", "recall", "ndcg"], cutoffs);

    [Fact]
    public void SeveralPositivesAtRanksTwoAndFour()
    {
        var result = One(relevant: [2, 5], ranked: [7, 2, 9, 5, 1], 1, 2, 5);

        Assert.Equal(0, result["mrr@1"], Tolerance);
        Assert.Equal(0.5, result["mrr@2"], Tolerance);
        Assert.Equal(0.5, result["mrr@5"], Tolerance);
        Assert.Equal(0, result["recall@1"], Tolerance);
        Assert.Equal(0.5, result["recall@2"], Tolerance);
        Assert.Equal(1, result["recall@5"], Tolerance);
        Assert.Equal(0, result["ndcg@1"], Tolerance);
        Assert.Equal(D2 / (D1 + D2), result["ndcg@2"], Tolerance);
        Assert.Equal((D2 + D4) / (D1 + D2), result["ndcg@5"], Tolerance);
        Assert.Equal(1, result.QueriesEvaluated);
        Assert.Equal(0, result.QueriesWithoutPositives);
    }

    [Fact]
    public void FewerResultsThanTheCutoffAreMissesAndDoNotShrinkTheDenominators()
    {
        // Three relevant rows but only one prediction (e.g. a tiny corpus): recall and IDCG still count all three.
        var result = One(relevant: [0, 1, 2], ranked: [1], 10);

        Assert.Equal(1, result["mrr@10"], Tolerance);
        Assert.Equal(1.0 / 3, result["recall@10"], Tolerance);
        Assert.Equal(D1 / (D1 + D2 + D3), result["ndcg@10"], Tolerance);
    }

    [Fact]
    public void CutoffLargerThanTheCorpus()
    {
        // Corpus of 3 rows, k = 100: every row is ranked, the relevant one last.
        var result = One(relevant: [2], ranked: [0, 1, 2], 100);

        Assert.Equal(1.0 / 3, result["mrr@100"], Tolerance);
        Assert.Equal(1, result["recall@100"], Tolerance);
        Assert.Equal(D3 / D1, result["ndcg@100"], Tolerance);
    }

    [Fact]
    public void IdealDcgStopsAtTheCutoffWhenThereAreMorePositivesThanK()
    {
        var result = One(relevant: [0, 1, 2, 3], ranked: [0, 9, 1], 2);

        Assert.Equal(0.25, result["recall@2"], Tolerance);
        Assert.Equal(D1 / (D1 + D2), result["ndcg@2"], Tolerance);
    }

    [Fact]
    public void QueryWithoutPositivesIsLeftOutOfTheAverageAndCounted()
    {
        var result = RetrievalMetrics.Compute(
            relevant: [[4], [], [3]],
            ranked: [[4, 1], [1, 2], [1, 3]],
            ["mrr", "recall", "ndcg"], [2]);

        // Averaged over the two queries with positives only: (1 + 1/2) / 2, not / 3.
        Assert.Equal((1 + 0.5) / 2, result["mrr@2"], Tolerance);
        Assert.Equal(1, result["recall@2"], Tolerance);
        Assert.Equal((1 + D2) / 2, result["ndcg@2"], Tolerance);
        Assert.Equal(2, result.QueriesEvaluated);
        Assert.Equal(1, result.QueriesWithoutPositives);
        Assert.Contains("1 without positives skipped", result.ToString());
    }

    [Fact]
    public void NoQueryWithPositivesIsAnError()
    {
        var error = Assert.Throws<EmbedderException>(() => RetrievalMetrics.Compute([[], []], [[0], [1]]));
        Assert.Equal("none of the 2 queries has a relevant corpus row (pos_index / qrels), so retrieval metrics are undefined", error.Message);
    }

    [Fact]
    public void RepeatedPredictionCountsOnceButKeepsItsRank()
    {
        // Row 3 is predicted at ranks 1 and 2; row 4 (relevant) sits at rank 3.
        var result = One(relevant: [3, 4], ranked: [3, 3, 4], 2, 3);

        Assert.Equal(0.5, result["recall@2"], Tolerance);
        Assert.Equal(1, result["recall@3"], Tolerance);
        Assert.Equal(D1 / (D1 + D2), result["ndcg@2"], Tolerance);
        Assert.Equal((D1 + D3) / (D1 + D2), result["ndcg@3"], Tolerance);
    }

    [Fact]
    public void NegativeIndicesArePaddingAndDropped()
    {
        var result = One(relevant: [4], ranked: [-1, 4, -1], 1);

        Assert.Equal(1, result["mrr@1"], Tolerance);
    }

    [Fact]
    public void RepeatedRelevantIndicesCountOnce()
    {
        var result = One(relevant: [1, 1], ranked: [1], 1);

        Assert.Equal(1, result["recall@1"], Tolerance);
        Assert.Equal(1, result["ndcg@1"], Tolerance);
    }

    [Fact]
    public void TiedScoresRankTheLowerCorpusIndexFirst()
    {
        // Rows 0 and 1 are the same vector, so they tie for the query; row 1 is the relevant one and must come second.
        float[] corpus = [1, 0, 1, 0, 0, 1];
        float[] queries = [1, 0];
        var search = ExactSearch.Search(queries, corpus, dimension: 2, k: 10);
        Assert.Equal(new[] { 0, 1, 2 }, search.Indices[0]);

        var result = RetrievalMetrics.Compute([[1]], search.Indices, ["mrr", "recall", "ndcg"], [1, 10]);

        Assert.Equal(0, result["mrr@1"], Tolerance);
        Assert.Equal(0.5, result["mrr@10"], Tolerance);
        Assert.Equal(0, result["recall@1"], Tolerance);
        Assert.Equal(1, result["recall@10"], Tolerance);
        Assert.Equal(D2, result["ndcg@10"], Tolerance);
    }

    [Fact]
    public void AveragesOverQueriesWithTheReferenceDefaults()
    {
        // Query A: hit at rank 1. Query B: hit at rank 7. Query C: no hit in its 3 results.
        int[][] ranked = [[5, 1, 2], [0, 1, 2, 3, 4, 5, 8, 9], [0, 1, 2]];
        int[][] relevant = [[5], [8], [7]];

        var result = RetrievalMetrics.Compute(relevant, ranked);

        Assert.Equal(new[] { "mrr@1", "mrr@5", "mrr@10", "mrr@100", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@100",
            "recall@1", "recall@5", "recall@10", "recall@100" }, result.Values.Keys);
        Assert.Equal(1.0 / 3, result["mrr@1"], Tolerance);
        Assert.Equal(1.0 / 3, result["mrr@5"], Tolerance);
        Assert.Equal((1 + 1.0 / 7) / 3, result["mrr@10"], Tolerance);
        Assert.Equal(2.0 / 3, result["recall@10"], Tolerance);
        Assert.Equal((1 + 1 / Math.Log2(8)) / 3, result["ndcg@10"], Tolerance);
        Assert.Equal((1 + 1 / Math.Log2(8)) / 3, result["ndcg@100"], Tolerance);
    }

    [Fact]
    public void UnknownMetricAndNonPositiveCutoffAreErrors()
    {
        var unknown = Assert.Throws<EmbedderException>(() => RetrievalMetrics.Compute([[0]], [[0]], ["map"], [1]));
        Assert.Equal("unknown metric 'map' (expected mrr, recall, ndcg)", unknown.Message);
        var zero = Assert.Throws<EmbedderException>(() => RetrievalMetrics.Compute([[0]], [[0]], ["mrr"], [0]));
        Assert.Equal("cutoff 0 must be a positive number of hits", zero.Message);
    }
}
