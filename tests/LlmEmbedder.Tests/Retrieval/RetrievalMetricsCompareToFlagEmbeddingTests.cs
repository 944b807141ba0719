using System.Text.Json;
using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>
/// FlagEmbedding's own RetrievalMetric (research/llm_embedder/src/retrieval/metrics.py) run on 120 random rankings by
/// Reference/flagembedding_metrics_reference.py; its output is stored in flagembedding_metrics_reference.json.
/// </summary>
public sealed class RetrievalMetricsCompareToFlagEmbeddingTests
{
    [Fact]
    public void SameValuesAsTheReferenceImplementation()
    {
        var path = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Retrieval", "Reference", "flagembedding_metrics_reference.json");
        using var reference = JsonDocument.Parse(File.ReadAllText(path));
        var cases = reference.RootElement.GetProperty("cases").EnumerateArray().ToArray();
        IReadOnlyList<int> Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var cutoffs = Ints(reference.RootElement.GetProperty("cutoffs"));

        var ours = RetrievalMetrics.Compute(
            cases.Select(c => Ints(c.GetProperty("relevant"))).ToArray(),
            cases.Select(c => Ints(c.GetProperty("ranked"))).ToArray(),
            ["mrr", "recall", "ndcg"], cutoffs);

        var expected = reference.RootElement.GetProperty("expected").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.Equal(expected.Keys.Order(), ours.Values.Keys.Order());
        foreach (var (key, value) in expected) Assert.Equal(value, ours[key], 1e-12);
        Assert.Equal(cases.Length, ours.QueriesEvaluated);
    }
}
