namespace LlmEmbedder.Retrieval;

/// <summary>
/// The hits of each query, best first: <c>Indices[q][r]</c> is the corpus row at rank r+1 of query q and
/// <c>Scores[q][r]</c> its score. Every query has min(k, corpus rows) hits.
/// </summary>
public sealed record SearchResult(int[][] Indices, float[][] Scores)
{
    public int QueryCount => Indices.Length;
}

/// <summary>
/// The one ranking order of the retrieval room: higher score first; equal scores by lower corpus index first;
/// NaN below every number (so a broken embedding sinks instead of scrambling the order).
/// </summary>
public static class ScoreOrder
{
    /// <summary>True when (scoreA, indexA) ranks before (scoreB, indexB).</summary>
    public static bool RanksBefore(float scoreA, int indexA, float scoreB, int indexB)
    {
        if (scoreA > scoreB) return true;
        if (scoreA < scoreB) return false;
        bool nanA = float.IsNaN(scoreA), nanB = float.IsNaN(scoreB);
        if (nanA != nanB) return nanB;
        return indexA < indexB;
    }

    /// <summary>A comparison for sorting (score, index) pairs into rank order.</summary>
    public static int Compare((float Score, int Index) a, (float Score, int Index) b) =>
        a.Index == b.Index && a.Score.Equals(b.Score) ? 0 : RanksBefore(a.Score, a.Index, b.Score, b.Index) ? -1 : 1;
}
