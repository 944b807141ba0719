namespace LlmEmbedder.Retrieval.Mining;

/// <summary>Which margin rule dropped a candidate.</summary>
public enum MarginVerdict
{
    Kept,
    AbsoluteMargin,
    RelativeMargin,
}

/// <summary>
/// sentence-transformers' mine_hard_negatives margins (the NV-Retriever rules), against the row's positive score p:
/// absolute_margin m drops a candidate scoring c when c + m &gt; p; relative_margin r drops it when c &gt; p·(1 − r)
/// ("at most 95% as similar as the positive" for r = 0.05). The absolute rule is applied first and a candidate counts
/// for the first rule that drops it. With several positives p is the lowest of their scores (the hardest positive),
/// as sentence-transformers does. Scores must be "higher is more similar"; the relative rule expects p &gt; 0
/// (with p ≤ 0 the bound p·(1 − r) lies at or above p).
/// </summary>
public sealed record MarginRule(double? Absolute, double? Relative)
{
    public bool IsActive => Absolute is not null || Relative is not null;

    public MarginVerdict Judge(float candidate, float positive)
    {
        if (Absolute is { } margin && candidate + margin > positive) return MarginVerdict.AbsoluteMargin;
        if (Relative is { } ratio && candidate > positive * (1 - ratio)) return MarginVerdict.RelativeMargin;
        return MarginVerdict.Kept;
    }

    /// <summary>The score the rules compare against: the lowest positive score, or null for a row without positives.</summary>
    public static float? PositiveScore(IReadOnlyList<float> positiveScores) => positiveScores.Count == 0 ? null : positiveScores.Min();
}

/// <summary>
/// The margin rules of a mining run with the scores they compare: each row's positive score, and a source of
/// candidate scores (the search's similarity, or a --scorer's).
/// </summary>
/// <param name="PositiveScores">Per row: the lowest positive score, or null when the row has no positive (its candidates are kept).</param>
/// <param name="CandidateScores">(row, pool indices) → the score of each of those pool texts against the row's query.</param>
public sealed record CandidateMargins(MarginRule Rule, IReadOnlyList<float?> PositiveScores, Func<int, IReadOnlyList<int>, float[]> CandidateScores);

/// <summary>What the margin rules removed.</summary>
/// <param name="Candidates">Usable hits in the sampling range that were judged (positives and the query are never candidates).</param>
/// <param name="RemovedByAbsolute">Of those, dropped by absolute_margin.</param>
/// <param name="RemovedByRelative">Of those, dropped by relative_margin (not counting ones absolute_margin dropped first).</param>
/// <param name="TopUpRejected">Random pool texts drawn to top up a short row and dropped by either rule.</param>
/// <param name="RowsWithoutPositives">Rows with no positive to compare with, whose candidates were all kept.</param>
public sealed record MarginCounts(long Candidates, long RemovedByAbsolute, long RemovedByRelative, long TopUpRejected, int RowsWithoutPositives);
