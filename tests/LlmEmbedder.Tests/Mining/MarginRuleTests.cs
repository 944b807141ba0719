using System.Text.Json.Nodes;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Retrieval.Mining;

namespace LlmEmbedder.Tests.Mining;

/// <summary>
/// The margin rules by hand: sentence-transformers' strict inequalities (c + m &gt; p, c &gt; p·(1 − r)), the lowest
/// positive as p, the absolute rule counted first, and the top-up held to the same rules.
/// </summary>
public sealed class MarginRuleTests
{
    [Fact]
    public void TheBoundsAreStrictAndTheAbsoluteRuleComesFirst()
    {
        var rule = new MarginRule(Absolute: 0.25, Relative: 0.5);
        Assert.Equal(MarginVerdict.Kept, rule.Judge(0.5f, 1f));            // 0.5 + 0.25 > 1 is false; 0.5 > 0.5 is false
        Assert.Equal(MarginVerdict.AbsoluteMargin, rule.Judge(0.875f, 1f)); // both rules would drop it: the absolute one counts
        Assert.Equal(MarginVerdict.RelativeMargin, new MarginRule(0.25, 0.6).Judge(0.5f, 1f)); // 0.5 > 0.4, 0.75 > 1 false
        Assert.Equal(MarginVerdict.Kept, new MarginRule(null, null).Judge(2f, 1f));
        Assert.Equal(0.25f, MarginRule.PositiveScore([0.75f, 0.25f, 0.5f]));
        Assert.Null(MarginRule.PositiveScore([]));
    }

    [Fact]
    public void CandidatesAboveTheMarginAreDroppedAndNeverComeBackAsTopUp()
    {
        // t0..t9 ranked in index order with search scores 1.0, 0.9, ..., 0.1; the positive scores 0.75, so relative 0.05
        // keeps scores <= 0.7125: t0, t1, t2 go.
        var pool = Enumerable.Range(0, 10).Select(i => $"t{i}").ToArray();
        var rows = new List<MiningRow> { new(1, new JsonObject(), "q", ["p"], []) };
        var ranked = new SearchResult([Enumerable.Range(0, 10).ToArray()], [Enumerable.Range(0, 10).Select(i => 1f - i / 10f).ToArray()]);
        float Score(int i) => i == 8 ? 0.95f : 1f - i / 10f;   // t8 ranks low in the search but a rescoring finds it close
        var margins = new CandidateMargins(new MarginRule(null, 0.05), [0.75f], (_, indices) => indices.Select(Score).ToArray());
        var options = new MiningOptions { RangeStart = 0, RangeEnd = 6, NegativeNumber = 3, Seed = 5 };

        var inRange = HardNegativeMiner.Select(rows, pool, ranked, options, margins);
        Assert.Equal(["t3", "t4", "t5"], inRange.Negatives[0]);
        Assert.Equal(new MarginCounts(Candidates: 6, RemovedByAbsolute: 0, RemovedByRelative: 3, TopUpRejected: 0, RowsWithoutPositives: 0), inRange.Margins);

        // Asking for every text: t0..t2 stay out even as top-up, and so does t8, rejected when drawn.
        var all = HardNegativeMiner.Select(rows, pool, ranked, options with { NegativeNumber = 9 }, margins);
        Assert.Equal(["t3", "t4", "t5", "t6", "t7", "t9"], all.Negatives[0].Order());
        Assert.Equal(1, all.Margins!.TopUpRejected);
        Assert.Equal((1, 1), (all.RowsToppedUp, all.RowsShort));

        // A row without a positive keeps every candidate, and is counted.
        var noPositive = new CandidateMargins(margins.Rule, [null], margins.CandidateScores);
        var kept = HardNegativeMiner.Select(rows, pool, ranked, options, noPositive);
        Assert.Equal(new MarginCounts(0, 0, 0, 0, RowsWithoutPositives: 1), kept.Margins);
        Assert.Equal(HardNegativeMiner.SelectNegatives(rows, pool, ranked, options, out _, out _), kept.Negatives);
    }

    [Fact]
    public void WithoutMarginsTheSelectionIsTheOneBeforeMargins()
    {
        var pool = Enumerable.Range(0, 40).Select(i => $"t{i}").ToArray();
        var rows = Enumerable.Range(0, 5).Select(r => new MiningRow(r + 1, new JsonObject(), $"q{r}", [$"t{r}"], [])).ToList();
        var ranked = new SearchResult(rows.Select((_, r) => Enumerable.Range(0, 20).Select(p => (p * 3 + r) % 40).ToArray()).ToArray(),
            rows.Select(_ => Enumerable.Range(0, 20).Select(p => -p / 100f).ToArray()).ToArray());
        var options = new MiningOptions { RangeStart = 2, RangeEnd = 12, NegativeNumber = 14, Seed = 3 };
        var before = HardNegativeMiner.SelectNegatives(rows, pool, ranked, options, out _, out _);
        var keepAll = new CandidateMargins(new MarginRule(1000, null), rows.Select(_ => (float?)1e6f).ToArray(),
            (_, indices) => indices.Select(_ => 0f).ToArray());
        Assert.Equal(before, HardNegativeMiner.Select(rows, pool, ranked, options, keepAll).Negatives);
    }
}
