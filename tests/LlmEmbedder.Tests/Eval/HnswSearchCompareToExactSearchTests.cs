using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Eval;

/// <summary>HNSW (USearch) against exact brute-force search on the same vectors: recall of the top 10, exact scores, rank order.</summary>
public sealed class HnswSearchCompareToExactSearchTests
{
    [Fact]
    public void RecallAtTenIsHighAndScoresAreTheExactDotProducts()
    {
        const int dimension = 48, rows = 4000, queries = 100, k = 10;
        var corpus = ClusteredUnitVectors(rows, dimension, seed: 1);
        var queryVectors = ClusteredUnitVectors(queries, dimension, seed: 2);

        var exact = ExactSearch.Search(queryVectors, corpus, dimension, k);
        var approximate = HnswSearch.Search(queryVectors, corpus, dimension, k);

        int found = 0;
        for (int q = 0; q < queries; q++)
        {
            found += approximate.Indices[q].Intersect(exact.Indices[q]).Count();
            Assert.Equal(approximate.Indices[q].Length, approximate.Indices[q].Distinct().Count());
            for (int r = 0; r < approximate.Indices[q].Length; r++)
            {
                int row = approximate.Indices[q][r];
                double dot = Enumerable.Range(0, dimension).Sum(d => (double)queryVectors[q * dimension + d] * corpus[row * dimension + d]);
                Assert.True(Math.Abs(dot - approximate.Scores[q][r]) < 1e-5, $"query {q} row {row}: score {approximate.Scores[q][r]} vs {dot}");
                if (r > 0) Assert.True(approximate.Scores[q][r - 1] >= approximate.Scores[q][r]);
            }
        }
        double recall = (double)found / (queries * k);
        Assert.True(recall >= 0.95, $"recall@10 {recall:F3}");
    }

    [Fact]
    public void AskingForMoreHitsThanRowsReturnsEveryRow()
    {
        var corpus = ClusteredUnitVectors(7, 8, seed: 3);
        var result = HnswSearch.Search(ClusteredUnitVectors(2, 8, seed: 4), corpus, 8, k: 20);
        Assert.All(result.Indices, hits => Assert.Equal(Enumerable.Range(0, 7), hits.Order()));
    }

    /// <summary>Unit vectors around 20 random centres, as embeddings of a topical corpus are.</summary>
    private static float[] ClusteredUnitVectors(int count, int dimension, int seed)
    {
        var random = new Random(seed);
        var centres = new Random(99);
        var centre = Enumerable.Range(0, 20).Select(_ => Enumerable.Range(0, dimension).Select(_ => centres.NextDouble() * 2 - 1).ToArray()).ToArray();
        var result = new float[count * dimension];
        for (int i = 0; i < count; i++)
        {
            var c = centre[random.Next(centre.Length)];
            var v = c.Select(x => x + 0.6 * (random.NextDouble() * 2 - 1)).ToArray();
            double norm = Math.Sqrt(v.Sum(x => x * x));
            for (int d = 0; d < dimension; d++) result[i * dimension + d] = (float)(v[d] / norm);
        }
        return result;
    }
}
