using System.Collections.Immutable;
using System.Globalization;

namespace LlmEmbedder.Retrieval;

/// <summary>Metric values keyed "name@cutoff" (e.g. "ndcg@10"), with how many queries they average.</summary>
/// <param name="Values">Ordered by metric name, then by cutoff as a number (mrr@1, mrr@5, mrr@10, mrr@100, ndcg@1, ...).</param>
/// <param name="QueriesEvaluated">Queries with at least one relevant corpus row: the ones averaged.</param>
/// <param name="QueriesWithoutPositives">Queries left out of the averages because nothing is relevant to them.</param>
public sealed record RetrievalMetricsResult(
    ImmutableSortedDictionary<string, double> Values, int QueriesEvaluated, int QueriesWithoutPositives)
{
    public double this[string key] => Values[key];

    /// <summary>One line for logs: "mrr@10=0.5123 ndcg@10=0.6012 ... (998 queries; 2 without positives skipped)".</summary>
    public override string ToString()
    {
        var values = string.Join(" ", Values.Select(v => $"{v.Key}={v.Value.ToString("F4", CultureInfo.InvariantCulture)}"));
        var skipped = QueriesWithoutPositives > 0 ? $"; {QueriesWithoutPositives} without positives skipped" : "";
        return $"{values} ({QueriesEvaluated} queries{skipped})";
    }
}

/// <summary>
/// Ranking metrics with binary relevance, averaged over queries (FlagEmbedding's RetrievalMetric mrr / recall / ndcg).
/// For a query with relevant set R and ranked list P, and a cutoff k:
/// <list type="bullet">
/// <item>mrr@k = 1 / (rank of the first relevant row) if that rank ≤ k, else 0;</item>
/// <item>recall@k = |R ∩ top-k of P| / |R|;</item>
/// <item>ndcg@k = Σ over relevant rows at rank i ≤ k of 1/log2(i+1), divided by IDCG = Σ_{i=1..min(|R|,k)} 1/log2(i+1).</item>
/// </list>
/// </summary>
/// <remarks>
/// Rules where the reference is silent or breaks:
/// <list type="bullet">
/// <item>A query without relevant rows is left out of every average and counted in
/// <see cref="RetrievalMetricsResult.QueriesWithoutPositives"/> (the reference divides by |R| = 0 and crashes, or
/// averages NaN). If no query has a relevant row the metrics are undefined: an error.</item>
/// <item>Fewer than k predictions (a corpus smaller than k, or a short list read back from a file): the missing ranks
/// are misses. The denominators do not shrink: recall still divides by |R|, IDCG still counts min(|R|, k) ideal hits.</item>
/// <item>Ties in scores are resolved before the metrics see a list: the metrics take the ranking as given, and
/// <see cref="ExactSearch"/> ranks equal scores by lower corpus index first (<see cref="ScoreOrder"/>).</item>
/// <item>A corpus row predicted twice counts only at its first rank; the repeat keeps its rank but is not a hit, so
/// no metric can exceed 1 (the reference's nDCG would count it twice).</item>
/// <item>A negative predicted index is padding (faiss writes -1 for missing hits) and is dropped before ranking, as
/// the reference's _clean_pred does.</item>
/// <item>Repeated entries in R count once.</item>
/// </list>
/// </remarks>
public static class RetrievalMetrics
{
    public static readonly IReadOnlyList<string> Supported = ["mrr", "recall", "ndcg"];

    /// <summary>The reference defaults (run_dense.py <c>--metrics</c>, <c>--cutoffs</c>).</summary>
    public static readonly IReadOnlyList<string> DefaultMetrics = ["mrr", "recall", "ndcg"];
    public static readonly IReadOnlyList<int> DefaultCutoffs = [1, 5, 10, 100];

    /// <summary>
    /// The one number that stands for a model's quality (loss curves, quantization checks): mrr@10 when measured,
    /// else the first metric with a cutoff (the evaluator orders them by name, then cutoff); null when there is none.
    /// </summary>
    public static string? MainMetric(IReadOnlyCollection<string> names) =>
        names.Contains("mrr@10") ? "mrr@10" : names.FirstOrDefault(n => n.Contains('@'));

    /// <summary>Orders keys "name@cutoff" by name, then by cutoff as a number.</summary>
    public static IComparer<string> KeyOrder { get; } = Comparer<string>.Create(CompareKeys);

    public static RetrievalMetricsResult Compute(
        RetrievalDataset dataset, SearchResult result, IReadOnlyList<string>? metrics = null, IReadOnlyList<int>? cutoffs = null)
    {
        if (result.QueryCount != dataset.Queries.Count)
            throw new ArgumentException($"{result.QueryCount} ranked lists for {dataset.Queries.Count} queries", nameof(result));
        return Compute(dataset.Queries.Select(q => q.RelevantCorpusIndices).ToArray(), result.Indices, metrics, cutoffs);
    }

    /// <param name="relevant">Per query, the relevant corpus indices.</param>
    /// <param name="ranked">Per query, predicted corpus indices, best first.</param>
    public static RetrievalMetricsResult Compute(
        IReadOnlyList<IReadOnlyList<int>> relevant, IReadOnlyList<IReadOnlyList<int>> ranked,
        IReadOnlyList<string>? metrics = null, IReadOnlyList<int>? cutoffs = null)
    {
        metrics ??= DefaultMetrics;
        cutoffs ??= DefaultCutoffs;
        if (relevant.Count != ranked.Count)
            throw new ArgumentException($"{ranked.Count} ranked lists for {relevant.Count} queries", nameof(ranked));
        foreach (var metric in metrics)
            if (!Supported.Contains(metric))
                throw new EmbedderException($"unknown metric '{metric}' (expected {string.Join(", ", Supported)})");
        foreach (var cutoff in cutoffs)
            if (cutoff <= 0) throw new EmbedderException($"cutoff {cutoff} must be a positive number of hits");
        var distinctMetrics = metrics.Distinct().ToArray();
        var distinctCutoffs = cutoffs.Distinct().ToArray();

        var sums = new double[distinctMetrics.Length, distinctCutoffs.Length];
        int evaluated = 0, withoutPositives = 0;
        for (int q = 0; q < relevant.Count; q++)
        {
            var relevantSet = relevant[q].ToHashSet();
            if (relevantSet.Count == 0) { withoutPositives++; continue; }
            evaluated++;
            var hitRanks = HitRanks(ranked[q], relevantSet);
            for (int m = 0; m < distinctMetrics.Length; m++)
                for (int c = 0; c < distinctCutoffs.Length; c++)
                    sums[m, c] += Score(distinctMetrics[m], hitRanks, relevantSet.Count, distinctCutoffs[c]);
        }
        if (evaluated == 0)
            throw new EmbedderException($"none of the {relevant.Count} queries has a relevant corpus row (pos_index / qrels), so retrieval metrics are undefined");

        var values = ImmutableSortedDictionary.CreateBuilder<string, double>(KeyOrder);
        for (int m = 0; m < distinctMetrics.Length; m++)
            for (int c = 0; c < distinctCutoffs.Length; c++)
                values[$"{distinctMetrics[m]}@{distinctCutoffs[c]}"] = sums[m, c] / evaluated;
        return new RetrievalMetricsResult(values.ToImmutable(), evaluated, withoutPositives);
    }

    /// <summary>1-based ranks of the relevant rows in the list, ascending, after dropping padding and repeats.</summary>
    private static List<int> HitRanks(IReadOnlyList<int> ranked, HashSet<int> relevant)
    {
        var hitRanks = new List<int>();
        var seen = new HashSet<int>();
        int rank = 0;
        foreach (var index in ranked)
        {
            if (index < 0) continue;
            rank++;
            if (seen.Add(index) && relevant.Contains(index)) hitRanks.Add(rank);
        }
        return hitRanks;
    }

    private static double Score(string metric, List<int> hitRanks, int relevantCount, int cutoff)
    {
        switch (metric)
        {
            case "mrr":
                return hitRanks.Count > 0 && hitRanks[0] <= cutoff ? 1.0 / hitRanks[0] : 0;
            case "recall":
                return (double)hitRanks.Count(r => r <= cutoff) / relevantCount;
            case "ndcg":
                double dcg = hitRanks.Where(r => r <= cutoff).Sum(Discount);
                double ideal = Enumerable.Range(1, Math.Min(relevantCount, cutoff)).Sum(Discount);
                return dcg / ideal;
            default:
                throw new InvalidOperationException(metric);
        }
    }

    private static double Discount(int rank) => 1.0 / Math.Log2(rank + 1);

    private static int CompareKeys(string? a, string? b)
    {
        if (a is null || b is null) return string.CompareOrdinal(a, b);
        var (nameA, cutoffA) = Split(a);
        var (nameB, cutoffB) = Split(b);
        int byName = string.CompareOrdinal(nameA, nameB);
        if (byName != 0) return byName;
        return cutoffA != cutoffB ? cutoffA.CompareTo(cutoffB) : string.CompareOrdinal(a, b);

        static (string Name, long Cutoff) Split(string key)
        {
            int at = key.LastIndexOf('@');
            return at >= 0 && long.TryParse(key.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var cutoff)
                ? (key[..at], cutoff)
                : (key, -1);
        }
    }
}
