using LlmEmbedder.Retrieval;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Eval;

/// <summary>eval --help states the metric rules that RetrievalMetrics implements (hand-checked in the Retrieval tests) and its defaults.</summary>
public sealed class EvalHelpTests
{
    [Fact]
    public void HelpStatesTheMetricRulesAndTheReferenceDefaults()
    {
        var help = CliProcess.Run(["eval", "--help"]);
        Assert.Equal(0, help.ExitCode);
        Assert.Contains("mrr@k    = 1 / rank of the first relevant hit, if that rank <= k; else 0", help.Stdout);
        Assert.Contains("recall@k = |R ∩ top-k of P| / |R|", help.Stdout);
        Assert.Contains("ndcg@k   = sum over relevant hits at rank i <= k of 1/log2(i+1), divided by sum_{i=1..min(|R|,k)} 1/log2(i+1)", help.Stdout);
        Assert.Contains("averaged over the queries that have at least one relevant corpus row", help.Stdout);
        Assert.Contains("Equal scores rank the lower corpus row first", help.Stdout);
        Assert.Contains($"[default: {string.Join("|", RetrievalMetrics.DefaultMetrics)}]", help.Stdout);
        Assert.Contains($"[default: {string.Join("|", RetrievalMetrics.DefaultCutoffs)}]", help.Stdout);
        Assert.Contains($"[default: {RetrievalEvaluation.DefaultHits}]", help.Stdout);
    }

    [Fact]
    public void MineAndExportHelpNameTheReferenceFlags()
    {
        var mine = CliProcess.Run(["mine", "--help"]).Stdout;
        foreach (var flag in new[] { "--input_file", "--output_file", "--candidate_pool", "--range_for_sampling", "--negative_number", "--seed" })
            Assert.Contains(flag, mine);
        Assert.Contains("[default: 10-210]", mine);
        Assert.Contains("[default: 15]", mine);
        var export = CliProcess.Run(["export", "--help"]).Stdout;
        foreach (var flag in new[] { "--encoder", "--output_dir", "--pooling_method", "--dense_metric", "--version", "--task", "--metrics_file" })
            Assert.Contains(flag, export);
    }
}
