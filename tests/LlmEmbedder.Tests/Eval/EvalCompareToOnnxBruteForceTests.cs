using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Reference;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// `eval` as a user runs it, on snowflake-arctic-embed-xs and a small English corpus, against a brute-force ranking
/// of ONNX Runtime embeddings (Hugging Face tokenizers, double precision): the ranking, the scores and the metrics
/// (computed again by hand from the ranking eval wrote, once it agrees with the reference's) must agree; a second run
/// takes the embeddings from the cache.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class EvalCompareToOnnxBruteForceTests : IDisposable
{
    private const double ScoreTolerance = 1e-4; // ONNX Runtime vs TorchSharp float32 kernels
    private static readonly string[] Metrics = ["mrr", "recall", "ndcg"];
    private static readonly int[] Cutoffs = [1, 5, 10];

    private readonly string dir = TestPaths.NewTempDir("eval-onnx");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void RankingScoresAndMetricsEqualOnnxBruteForceAndTheSecondRunReadsTheCache()
    {
        var arctic = PretrainedOnnxModels.ArcticXs;
        var (evalData, corpus) = SmallEnglishRetrievalSet.WriteFlagEmbedding(dir);
        var output = Path.Combine(dir, "out");
        var cache = Path.Combine(dir, "cache");
        string[] args = ["eval", "--model", arctic.HuggingFaceDir, "--eval_data", evalData, "--corpus", corpus, "--output_dir", output,
            "--cache_dir", cache, "--cutoffs", "1", "5", "10", "--hits", "50", "--batch_size", "16"];

        var first = CliProcess.Run(args);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("corpus embeddings encoded", first.Stderr);
        var results = ReadResults(Path.Combine(output, "results.jsonl"));

        var reference = BruteForce(arctic, queryPrefix: "", keyPrefix: "");
        AssertSameRanking(reference, results);
        AssertMetricsAreHandComputed(results, Path.Combine(output, "metrics.json"));
        Assert.Contains("ndcg@10", first.Stdout);

        var firstBytes = File.ReadAllBytes(Path.Combine(output, "results.jsonl"));
        var second = CliProcess.Run(args);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.Contains("corpus embeddings from cache, queries from cache", second.Stderr);
        Assert.Equal(firstBytes, File.ReadAllBytes(Path.Combine(output, "results.jsonl")));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(cache, "embeddings"), "*.npy").Length);
    }

    [Fact]
    public void InstructionsPrefixQueriesAndKeysAsInTheBruteForceReference()
    {
        var arctic = PretrainedOnnxModels.ArcticXs;
        var (evalData, corpus) = SmallEnglishRetrievalSet.WriteFlagEmbedding(dir);
        var output = Path.Combine(dir, "out");
        var result = CliProcess.Run(["eval", "--model", arctic.HuggingFaceDir, "--eval_data", evalData, "--corpus", corpus, "--output_dir", output,
            "--no_cache", "--version", "llm-embedder", "--task", "qa", "--cutoffs", "1", "5", "10", "--hits", "50"]);
        Assert.True(result.ExitCode == 0, result.Stderr);

        var reference = BruteForce(arctic,
            queryPrefix: "Represent this query for retrieving relevant documents: ", keyPrefix: "Represent this document for retrieval: ");
        var results = ReadResults(Path.Combine(output, "results.jsonl"));
        AssertSameRanking(reference, results);
        AssertMetricsAreHandComputed(results, Path.Combine(output, "metrics.json"));
    }

    [Fact]
    public void BeirFolderGivesTheSameMetricsWithCorpusIdsAndReusesTheCachedCorpus()
    {
        var arctic = PretrainedOnnxModels.ArcticXs;
        var (evalData, corpus) = SmallEnglishRetrievalSet.WriteFlagEmbedding(dir);
        var beir = SmallEnglishRetrievalSet.WriteBeir(Path.Combine(dir, "beir"));
        var cache = Path.Combine(dir, "cache");
        string[] common = ["--model", arctic.HuggingFaceDir, "--cache_dir", cache, "--cutoffs", "1", "5", "10", "--hits", "50"];

        var flag = CliProcess.Run(["eval", .. common, "--eval_data", evalData, "--corpus", corpus, "--output_dir", Path.Combine(dir, "flag")]);
        Assert.True(flag.ExitCode == 0, flag.Stderr);
        var fromBeir = CliProcess.Run(["eval", .. common, "--eval_data", beir, "--split", "test", "--output_dir", Path.Combine(dir, "beir-out")]);
        Assert.True(fromBeir.ExitCode == 0, fromBeir.Stderr);

        // The corpus renders to the same key texts in both layouts, so its embeddings are found by content.
        Assert.Contains("corpus embeddings from cache", fromBeir.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "flag", "metrics.json")), File.ReadAllText(Path.Combine(dir, "beir-out", "metrics.json")));
        var byRow = ReadResults(Path.Combine(dir, "flag", "results.jsonl"));
        var byId = File.ReadAllLines(Path.Combine(dir, "beir-out", "results.jsonl")).Select(line => JsonNode.Parse(line)!).ToArray();
        for (int q = 0; q < byRow.Length; q++)
        {
            Assert.Equal($"q{q}", byId[q]["query_id"]!.GetValue<string>());
            Assert.Equal(byRow[q].Pred.Select(i => $"doc{i}"), byId[q]["pred"]!.AsArray().Select(p => p!.GetValue<string>()));
        }
    }

    [Fact]
    public void HnswIndexFindsTheSameTopTenAsExactSearchOnASmallCorpus()
    {
        var arctic = PretrainedOnnxModels.ArcticXs;
        var (evalData, corpus) = SmallEnglishRetrievalSet.WriteFlagEmbedding(dir);
        var cache = Path.Combine(dir, "cache");
        foreach (var index in new[] { "exact", "hnsw" })
        {
            var run = CliProcess.Run(["eval", "--model", arctic.HuggingFaceDir, "--eval_data", evalData, "--corpus", corpus, "--cache_dir", cache,
                "--index", index, "--cutoffs", "1", "5", "10", "--hits", "10", "--output_dir", Path.Combine(dir, index)]);
            Assert.True(run.ExitCode == 0, run.Stderr);
        }
        var exact = ReadResults(Path.Combine(dir, "exact", "results.jsonl"));
        var hnsw = ReadResults(Path.Combine(dir, "hnsw", "results.jsonl"));
        for (int q = 0; q < exact.Length; q++)
        {
            Assert.Equal(exact[q].Pred, hnsw[q].Pred);
            for (int r = 0; r < exact[q].Score.Length; r++) Assert.Equal(exact[q].Score[r], hnsw[q].Score[r], 5);
        }
    }

    [Fact]
    public void CompareEvaluatesBothModelsPrintsBothColumnsAndWritesAPngChart()
    {
        var (evalData, corpus) = SmallEnglishRetrievalSet.WriteFlagEmbedding(dir);
        var output = Path.Combine(dir, "out");
        string[] common = ["--eval_data", evalData, "--corpus", corpus, "--no_cache", "--cutoffs", "1", "10", "--hits", "10"];
        var result = CliProcess.Run(["eval", "--model", PretrainedOnnxModels.ArcticXs.HuggingFaceDir, "--compare", PretrainedOnnxModels.MiniLM.HuggingFaceDir,
            "--output_dir", output, .. common]);
        Assert.True(result.ExitCode == 0, result.Stderr);

        var alone = CliProcess.Run(["eval", "--model", PretrainedOnnxModels.MiniLM.HuggingFaceDir, "--output_dir", Path.Combine(dir, "minilm"), .. common]);
        Assert.True(alone.ExitCode == 0, alone.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "minilm", "metrics.json")), File.ReadAllText(Path.Combine(output, "compare", "metrics.json")));

        var arcticMetrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!;
        var miniLmMetrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "compare", "metrics.json")))!;
        var ndcgLine = result.Stdout.Split('\n').Single(line => line.Contains("ndcg@10"));
        Assert.Contains(arcticMetrics["ndcg@10"]!.GetValue<double>().ToString("F4", System.Globalization.CultureInfo.InvariantCulture), ndcgLine);
        Assert.Contains(miniLmMetrics["ndcg@10"]!.GetValue<double>().ToString("F4", System.Globalization.CultureInfo.InvariantCulture), ndcgLine);

        var png = File.ReadAllBytes(Path.Combine(output, "comparison.png"));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
        Assert.True(png.Length > 5000, $"chart is only {png.Length} bytes");
    }

    private sealed record ResultRow(int QueryId, int[] Pred, double[] Score);

    private static ResultRow[] ReadResults(string path) =>
        File.ReadAllLines(path).Select(line =>
        {
            var row = JsonNode.Parse(line)!;
            return new ResultRow(row["query_id"]!.GetValue<int>(),
                row["pred"]!.AsArray().Select(p => p!.GetValue<int>()).ToArray(),
                row["score"]!.AsArray().Select(s => s!.GetValue<double>()).ToArray());
        }).ToArray();

    private static (int[] Order, double[] Scores)[] BruteForce(OnnxReferenceModel model, string queryPrefix, string keyPrefix)
    {
        var set = SmallEnglishRetrievalSet.Queries;
        var queries = OnnxBruteForce.ClsEmbeddings(model, set.Select(q => queryPrefix + q.Query).ToArray());
        var keys = OnnxBruteForce.ClsEmbeddings(model,
            Enumerable.Range(0, SmallEnglishRetrievalSet.Passages.Length).Select(i => keyPrefix + SmallEnglishRetrievalSet.KeyText(i)).ToArray());
        return OnnxBruteForce.Rank(queries, keys);
    }

    /// <summary>
    /// The i-th hit has the i-th best reference score (so rows may only trade places when their scores tie within
    /// float precision), every row appears once, and the reported score is the reference's.
    /// </summary>
    private static void AssertSameRanking((int[] Order, double[] Scores)[] reference, ResultRow[] results)
    {
        Assert.Equal(reference.Length, results.Length);
        int samePosition = 0, positions = 0;
        for (int q = 0; q < results.Length; q++)
        {
            var (order, scores) = reference[q];
            Assert.Equal(q, results[q].QueryId);
            Assert.Equal(order.Length, results[q].Pred.Length);
            Assert.Equal(order.Length, results[q].Pred.Distinct().Count());
            for (int r = 0; r < order.Length; r++)
            {
                var row = results[q].Pred[r];
                Assert.True(Math.Abs(scores[row] - scores[order[r]]) < ScoreTolerance,
                    $"query {q} rank {r + 1}: got row {row} (reference score {scores[row]:F6}), reference ranks row {order[r]} there ({scores[order[r]]:F6})");
                Assert.True(Math.Abs(results[q].Score[r] - scores[row]) < ScoreTolerance, $"query {q} row {row}: score {results[q].Score[r]} vs {scores[row]}");
                positions++;
                if (row == order[r]) samePosition++;
            }
        }
        // Near-ties are rare on real embeddings: almost every position must be the very same row.
        Assert.True(samePosition >= positions * 0.98, $"{samePosition} of {positions} positions equal the reference order");
    }

    /// <summary>
    /// The metrics of the ranking eval wrote, computed by hand. Not those of the reference's order: AssertSameRanking lets
    /// near-ties trade places, and which ones do depends on the CPU's float32 kernels (ONNX Runtime's and libtorch's
    /// alike), so a swap across a relevant row at a cutoff would fail the metrics on some machines and not others.
    /// </summary>
    private static void AssertMetricsAreHandComputed(ResultRow[] results, string metricsPath)
    {
        var reported = JsonNode.Parse(File.ReadAllText(metricsPath))!.AsObject();
        var relevant = SmallEnglishRetrievalSet.Queries.Select(q => (IReadOnlySet<int>)q.Relevant.ToHashSet()).ToArray();
        foreach (var metric in Metrics)
            foreach (var cutoff in Cutoffs)
            {
                double expected = results.Average(row => OnnxBruteForce.Metric(metric, cutoff, row.Pred, relevant[row.QueryId]));
                Assert.Equal(expected, reported[$"{metric}@{cutoff}"]!.GetValue<double>(), 9);
            }
        Assert.Equal(SmallEnglishRetrievalSet.Queries.Length, reported["queries_evaluated"]!.GetValue<int>());
        Assert.Equal(Metrics.Length * Cutoffs.Length + 2, reported.Count);
    }
}
