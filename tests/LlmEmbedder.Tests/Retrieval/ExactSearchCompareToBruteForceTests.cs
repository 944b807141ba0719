using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>
/// ExactSearch against the obvious algorithm: score every (query, row) pair in double precision, sort all rows by
/// (score descending, index ascending), keep the first k.
/// </summary>
public sealed class ExactSearchCompareToBruteForceTests
{
    /// <summary>The full-sort reference: for each query, (index, score) of all corpus rows in rank order.</summary>
    private static (int Index, double Score)[][] BruteForce(float[] queries, float[] corpus, int dimension)
    {
        int queryCount = queries.Length / dimension, corpusCount = corpus.Length / dimension;
        var ranked = new (int, double)[queryCount][];
        for (int q = 0; q < queryCount; q++)
        {
            var all = new (int Index, double Score)[corpusCount];
            for (int c = 0; c < corpusCount; c++)
            {
                double dot = 0;
                for (int d = 0; d < dimension; d++) dot += (double)queries[q * dimension + d] * corpus[c * dimension + d];
                all[c] = (c, dot);
            }
            ranked[q] = all.OrderByDescending(p => p.Score).ThenBy(p => p.Index).ToArray();
        }
        return ranked;
    }

    /// <summary>Small integers: every dot product is exact in float, so the reference order is exact and ties are frequent.</summary>
    private static float[] SmallIntegers(Random random, int count) =>
        Enumerable.Range(0, count).Select(_ => (float)random.Next(-2, 3)).ToArray();

    private static float[] NormalisedRows(Random random, int rows, int dimension)
    {
        var values = new float[rows * dimension];
        for (int r = 0; r < rows; r++)
        {
            double norm = 0;
            for (int d = 0; d < dimension; d++)
            {
                // Box-Muller: Gaussian coordinates give directions uniform on the sphere.
                double gaussian = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                values[r * dimension + d] = (float)gaussian;
                norm += gaussian * gaussian;
            }
            for (int d = 0; d < dimension; d++) values[r * dimension + d] /= (float)Math.Sqrt(norm);
        }
        return values;
    }

    public static TheoryData<int, int, int> SplitsOfTheWork => new()
    {
        // chunk rows, query block rows, threads
        { 7, 128, 2 },      // chunk < k and 7 does not divide 1000
        { 64, 4, 1 },
        { 333, 5, 2 },      // block not a multiple of the 4x4 tile
        { 1000, 1, 2 },     // one chunk = the whole corpus; blocks of a single query
        { 5000, 128, 2 },   // chunk larger than the corpus
    };

    [Theory]
    [MemberData(nameof(SplitsOfTheWork))]
    public void IdenticalIndicesAndScoresOnExactData(int chunkRows, int blockRows, int threads)
    {
        const int dimension = 19, queryCount = 37, corpusCount = 1000, k = 50; // 19 = two 8-lane steps + 3 leftover dims
        var random = new Random(11);
        var queries = SmallIntegers(random, queryCount * dimension);
        var corpus = SmallIntegers(random, corpusCount * dimension);

        var result = ExactSearch.Search(queries, corpus, dimension, k,
            new ExactSearchOptions { CorpusChunkRows = chunkRows, QueryBlockRows = blockRows, Threads = threads });

        var expected = BruteForce(queries, corpus, dimension);
        Assert.Equal(queryCount, result.QueryCount);
        int ties = 0;
        for (int q = 0; q < queryCount; q++)
        {
            Assert.Equal(expected[q].Take(k).Select(p => p.Index), result.Indices[q]);
            Assert.Equal(expected[q].Take(k).Select(p => (float)p.Score), result.Scores[q]);
            ties += Enumerable.Range(1, k - 1).Count(r => result.Scores[q][r] == result.Scores[q][r - 1]);
        }
        Assert.True(ties > 100, $"the data should exercise the tie-break, found {ties} ties");
    }

    [Fact]
    public void SameTopKAsDoublePrecisionOnNormalisedVectors()
    {
        const int dimension = 64, queryCount = 50, corpusCount = 3000, k = 20;
        var random = new Random(5);
        var queries = NormalisedRows(random, queryCount, dimension);
        var corpus = NormalisedRows(random, corpusCount, dimension);

        var result = ExactSearch.Search(queries, corpus, dimension, k, new ExactSearchOptions { CorpusChunkRows = 257, Threads = 2 });

        var expected = BruteForce(queries, corpus, dimension);
        for (int q = 0; q < queryCount; q++)
        {
            for (int r = 0; r < k; r++) Assert.Equal(expected[q][r].Score, result.Scores[q][r], 1e-5);
            // Rows whose score is clearly above the k-th must all be found; only float rounding may swap near-ties.
            double kth = expected[q][k - 1].Score;
            var clearlyIn = expected[q].Where(p => p.Score > kth + 1e-5).Select(p => p.Index);
            Assert.Subset(result.Indices[q].ToHashSet(), clearlyIn.ToHashSet());
        }
    }

    [Fact]
    public void ResultsDoNotDependOnHowTheWorkIsSplit()
    {
        const int dimension = 384, queryCount = 21, corpusCount = 2003, k = 30;
        var random = new Random(3);
        var queries = NormalisedRows(random, queryCount, dimension);
        var corpus = NormalisedRows(random, corpusCount, dimension);

        var baseline = ExactSearch.Search(queries, corpus, dimension, k, new ExactSearchOptions { CorpusChunkRows = 1, QueryBlockRows = 1, Threads = 1 });
        foreach (var options in new[]
        {
            new ExactSearchOptions(),
            new ExactSearchOptions { CorpusChunkRows = 29, QueryBlockRows = 8, Threads = 2 },
            new ExactSearchOptions { CorpusChunkRows = 4096, QueryBlockRows = 3, Threads = 2 },
        })
        {
            var result = ExactSearch.Search(queries, corpus, dimension, k, options);
            for (int q = 0; q < queryCount; q++)
            {
                Assert.Equal(baseline.Indices[q], result.Indices[q]);
                Assert.Equal(baseline.Scores[q], result.Scores[q]); // bit for bit
            }
        }
    }

    [Fact]
    public void KLargerThanTheCorpusReturnsEveryRowRanked()
    {
        float[] corpus = [0, 1, 3, 0, -1, 0]; // rows: (0,1) (3,0) (-1,0)
        float[] queries = [1, 1, -1, 0];
        var result = ExactSearch.Search(queries, corpus, dimension: 2, k: 10);

        Assert.Equal(new[] { 1, 0, 2 }, result.Indices[0]);
        Assert.Equal(new[] { 3f, 1f, -1f }, result.Scores[0]);
        Assert.Equal(new[] { 2, 0, 1 }, result.Indices[1]);
        Assert.Equal(new[] { 1f, 0f, -3f }, result.Scores[1]);
    }

    [Fact]
    public void IdenticalRowsComeOutInCorpusOrder()
    {
        var corpus = Enumerable.Repeat(new float[] { 0.6f, 0.8f }, 100).SelectMany(r => r).ToArray();
        var result = ExactSearch.Search([1, 0], corpus, dimension: 2, k: 10, new ExactSearchOptions { CorpusChunkRows = 3 });

        Assert.Equal(Enumerable.Range(0, 10), result.Indices[0]);
    }

    [Fact]
    public void NaNScoresRankLast()
    {
        float[] corpus = [float.NaN, 0, -5, 0, 1, 0];
        var result = ExactSearch.Search([1, 0], corpus, dimension: 2, k: 3);

        Assert.Equal(new[] { 2, 1, 0 }, result.Indices[0]);
    }

    [Fact]
    public void NoQueriesGiveNoResults()
    {
        var result = ExactSearch.Search([], [1, 0], dimension: 2, k: 5);
        Assert.Equal(0, result.QueryCount);
    }

    [Fact]
    public void MismatchedShapesAreRejected()
    {
        Assert.Throws<ArgumentException>(() => ExactSearch.Search([1, 2, 3], [1, 0], dimension: 2, k: 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ExactSearch.Search([1, 0], [1, 0], dimension: 2, k: 0));
    }
}
