using System.Text.Json;
using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>The files read back with a JSON parser: FlagEmbedding's results.jsonl row shape and a flat metrics.json.</summary>
public sealed class RetrievalResultsTests
{
    private static string Fixtures(params string[] parts) =>
        Path.Combine([TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Retrieval", "Fixtures", .. parts]);

    [Fact]
    public void FlagEmbeddingResultsKeepQueryIdTypesAndPredictCorpusRowNumbers()
    {
        var dataset = RetrievalDataset.LoadFlagEmbedding(Fixtures("flagembedding", "eval.jsonl"), Fixtures("flagembedding", "corpus.jsonl"));
        var result = new SearchResult(
            [[0, 2], [1, 0], [4, 3], [3, 1]],
            [[0.9f, 0.25f], [0.5f, 0.5f], [float.NaN, -1f], [1e-8f, -0.125f]]);
        var dir = TestPaths.NewTempDir("results");
        var path = Path.Combine(dir, "results.jsonl");

        RetrievalResults.WriteJsonl(path, dataset, result);

        var lines = File.ReadAllLines(path);
        Assert.Equal(4, lines.Length);
        using var first = JsonDocument.Parse(lines[0]);
        Assert.Equal(new[] { "query_id", "pred", "score" }, first.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(JsonValueKind.Number, first.RootElement.GetProperty("query_id").ValueKind);
        Assert.Equal(0, first.RootElement.GetProperty("query_id").GetInt32());
        Assert.Equal(new[] { 0, 2 }, first.RootElement.GetProperty("pred").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(new[] { 0.9f, 0.25f }, first.RootElement.GetProperty("score").EnumerateArray().Select(e => e.GetSingle()));

        using var second = JsonDocument.Parse(lines[1]);
        Assert.Equal("q-big", second.RootElement.GetProperty("query_id").GetString());
        using var third = JsonDocument.Parse(lines[2]);
        Assert.Equal(7, third.RootElement.GetProperty("query_id").GetInt32());
        Assert.Equal(JsonValueKind.Null, third.RootElement.GetProperty("score")[0].ValueKind);
        using var fourth = JsonDocument.Parse(lines[3]);
        Assert.Equal(1e-8f, fourth.RootElement.GetProperty("score")[0].GetSingle()); // round-trips exactly
        Assert.Equal(new[] { "results.jsonl" }, Directory.GetFiles(dir).Select(Path.GetFileName)); // no temp file left
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void BeirResultsPredictCorpusIdsAndKeepChineseReadable()
    {
        var dataset = RetrievalDataset.LoadBeir(Fixtures("beir")) with
        {
            Queries = [new RetrievalQuery("问题一", false, "text", [0])],
        };
        var dir = TestPaths.NewTempDir("results");
        var path = Path.Combine(dir, "results.jsonl");

        RetrievalResults.WriteJsonl(path, dataset, new SearchResult([[3, 0]], [[2f, 1f]]));

        var text = File.ReadAllText(path);
        Assert.Equal("{\"query_id\":\"问题一\",\"pred\":[\"4\",\"d1\"],\"score\":[2,1]}\n", text);
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void MetricsFileListsMetricsInKeyOrderThenTheCounts()
    {
        var metrics = RetrievalMetrics.Compute([[0], [], [1]], [[0, 1], [0, 1], [0, 1]], ["recall", "mrr"], [10, 1]);
        var dir = TestPaths.NewTempDir("metrics");
        var path = Path.Combine(dir, "metrics.json");

        RetrievalResults.WriteMetrics(path, metrics);

        using var json = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal(new[] { "mrr@1", "mrr@10", "recall@1", "recall@10", "queries_evaluated", "queries_without_positives" },
            json.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal(0.5, json.RootElement.GetProperty("mrr@1").GetDouble());
        Assert.Equal(0.75, json.RootElement.GetProperty("mrr@10").GetDouble());
        Assert.Equal(1, json.RootElement.GetProperty("recall@10").GetDouble());
        Assert.Equal(2, json.RootElement.GetProperty("queries_evaluated").GetInt32());
        Assert.Equal(1, json.RootElement.GetProperty("queries_without_positives").GetInt32());
        Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public void MismatchedQueryCountIsRejectedBeforeWriting()
    {
        var dataset = RetrievalDataset.LoadBeir(Fixtures("beir"));
        var dir = TestPaths.NewTempDir("results");
        var path = Path.Combine(dir, "results.jsonl");

        Assert.Throws<ArgumentException>(() => RetrievalResults.WriteJsonl(path, dataset, new SearchResult([[0]], [[1f]])));
        Assert.False(File.Exists(path));
        Directory.Delete(dir, recursive: true);
    }
}
