namespace LlmEmbedder.Retrieval;

/// <summary>
/// The best <c>capacity</c> (score, corpus index) pairs seen so far, in <see cref="ScoreOrder"/>. A binary heap whose
/// root is the worst kept pair, so a candidate is compared with one element and most are rejected by
/// <see cref="WorstScore"/> alone.
/// </summary>
internal sealed class TopKHeap
{
    private readonly float[] scores;
    private readonly int[] indices;
    private int count;

    public TopKHeap(int capacity)
    {
        scores = new float[capacity];
        indices = new int[capacity];
    }

    public bool IsFull => count == scores.Length;

    /// <summary>The score of the worst kept pair; meaningful once <see cref="IsFull"/>.</summary>
    public float WorstScore => scores[0];

    public void Offer(float score, int index)
    {
        if (count < scores.Length)
        {
            scores[count] = score;
            indices[count] = index;
            SiftUp(count++);
            return;
        }
        if (scores.Length == 0 || !ScoreOrder.RanksBefore(score, index, scores[0], indices[0])) return;
        scores[0] = score;
        indices[0] = index;
        SiftDown(0);
    }

    /// <summary>The kept pairs, best first.</summary>
    public (int[] Indices, float[] Scores) ToRanked()
    {
        var pairs = new (float Score, int Index)[count];
        for (int i = 0; i < count; i++) pairs[i] = (scores[i], indices[i]);
        Array.Sort(pairs, ScoreOrder.Compare);
        return (pairs.Select(p => p.Index).ToArray(), pairs.Select(p => p.Score).ToArray());
    }

    // Heap invariant: a parent never ranks before its children (the root is the worst).
    private bool RanksBefore(int a, int b) => ScoreOrder.RanksBefore(scores[a], indices[a], scores[b], indices[b]);

    private void SiftUp(int node)
    {
        while (node > 0)
        {
            int parent = (node - 1) / 2;
            if (!RanksBefore(parent, node)) return;
            Swap(parent, node);
            node = parent;
        }
    }

    private void SiftDown(int node)
    {
        while (true)
        {
            int left = 2 * node + 1, right = left + 1, worst = node;
            if (left < count && RanksBefore(worst, left)) worst = left;
            if (right < count && RanksBefore(worst, right)) worst = right;
            if (worst == node) return;
            Swap(worst, node);
            node = worst;
        }
    }

    private void Swap(int a, int b)
    {
        (scores[a], scores[b]) = (scores[b], scores[a]);
        (indices[a], indices[b]) = (indices[b], indices[a]);
    }
}
