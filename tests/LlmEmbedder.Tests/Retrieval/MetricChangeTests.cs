using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>The change column of eval --compare and of training's before/after table, on numbers worked out by hand.</summary>
public sealed class MetricChangeTests
{
    [Fact]
    public void ChangeIsModelMinusBaseline()
    {
        // A trained model (model) against its start (baseline): mrr@1 rose from 0.25 to 0.85, recall@5 fell from 0.75 to 0.5.
        var trained = new Dictionary<string, double> { ["mrr@1"] = 0.85, ["recall@5"] = 0.5, ["ndcg@5"] = 0.6 };
        var start = new Dictionary<string, double> { ["mrr@1"] = 0.25, ["recall@5"] = 0.75, ["ndcg@10"] = 0.4 };

        var rows = MetricChange.Compare(trained, start);

        Assert.Equal(["mrr@1", "recall@5", "ndcg@5", "ndcg@10"], rows.Select(r => r.Metric));
        Assert.Equal(0.60, rows[0].Change, 12);
        Assert.Equal(-0.25, rows[1].Change, 12);
        Assert.True(double.IsNaN(rows[2].Change) && double.IsNaN(rows[2].Baseline));
        Assert.True(double.IsNaN(rows[3].Change) && double.IsNaN(rows[3].Model));
        Assert.Equal((0.85, 0.25), (rows[0].Model, rows[0].Baseline));
    }
}
