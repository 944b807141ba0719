using LlmEmbedder.Tests.Reference;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// The independent reference for retrieval: token ids from Hugging Face tokenizers (Tokenizers.DotNet), the
/// last_hidden_state from ONNX Runtime on the original graph, pooling, normalisation and a brute-force ranking in
/// double precision. None of our encoding or search code is involved.
/// </summary>
internal static class OnnxBruteForce
{
    /// <summary>The [CLS] row of each text, encoded alone (no padding), as doubles; L2-normalised when asked.</summary>
    public static double[][] ClsEmbeddings(OnnxReferenceModel reference, IReadOnlyList<string> texts, bool normalize = true)
    {
        using var tokenizer = new Tokenizer(reference.TokenizerJsonPath);
        int hidden = reference.Config.HiddenSize;
        return texts.Select(text =>
        {
            var ids = tokenizer.Encode(text).Select(id => (long)id).ToArray();
            var state = reference.RunLastHiddenState(ids, ids.Select(_ => 1L).ToArray(), new long[ids.Length], 1, ids.Length);
            var cls = state.Take(hidden).Select(v => (double)v).ToArray();
            return normalize ? Normalize(cls) : cls;
        }).ToArray();
    }

    public static double[] Normalize(double[] vector)
    {
        double norm = Math.Sqrt(vector.Sum(v => v * v));
        return vector.Select(v => v / norm).ToArray();
    }

    public static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();

    /// <summary>Every corpus row for each query, best first (equal scores: lower row first), with the scores.</summary>
    public static (int[] Order, double[] Scores)[] Rank(double[][] queries, double[][] corpus) =>
        queries.Select(q =>
        {
            var scores = corpus.Select(c => Dot(q, c)).ToArray();
            var order = Enumerable.Range(0, corpus.Length).OrderByDescending(i => scores[i]).ThenBy(i => i).ToArray();
            return (order, scores);
        }).ToArray();

    /// <summary>The rules of docs/REFERENCE.md §7, written out again for the hand computation: mrr@k, recall@k, ndcg@k of one ranking.</summary>
    public static double Metric(string metric, int cutoff, IReadOnlyList<int> ranked, IReadOnlySet<int> relevant)
    {
        var top = ranked.Take(cutoff).ToArray();
        switch (metric)
        {
            case "mrr":
                int first = Array.FindIndex(top, relevant.Contains);
                return first < 0 ? 0 : 1.0 / (first + 1);
            case "recall":
                return (double)top.Count(relevant.Contains) / relevant.Count;
            case "ndcg":
                double dcg = top.Select((row, i) => relevant.Contains(row) ? 1 / Math.Log2(i + 2) : 0).Sum();
                double ideal = Enumerable.Range(0, Math.Min(relevant.Count, cutoff)).Sum(i => 1 / Math.Log2(i + 2));
                return dcg / ideal;
            default:
                throw new ArgumentException(metric);
        }
    }
}
