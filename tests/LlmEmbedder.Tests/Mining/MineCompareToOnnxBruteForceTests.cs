using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Eval;
using LlmEmbedder.Tests.Reference;

namespace LlmEmbedder.Tests.Mining;

/// <summary>
/// `mine` as a user runs it on snowflake-arctic-embed-xs, checked against a brute-force ranking of the pool by
/// ONNX Runtime embeddings (with the instructions applied as the reference applies them): every mined negative sits
/// inside the sampling range of that ranking, none is a positive or the query, the same seed gives the same file.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class MineCompareToOnnxBruteForceTests : IDisposable
{
    private const string QueryInstruction = "Represent this query for retrieving relevant documents: ";
    private const string KeyInstruction = "Represent this document for retrieval: ";
    private const int RangeStart = 3, RangeEnd = 25, NegativeNumber = 6;

    private readonly string dir = TestPaths.NewTempDir("mine");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void MinedNegativesComeFromTheRangeOfTheOnnxRankingAndNeverArePositivesOrTheQuery()
    {
        var (input, pool, poolTexts) = WriteInputs();
        var output = Path.Combine(dir, "mined.jsonl");
        string[] args = ["mine", "--model", PretrainedOnnxModels.ArcticXs.HuggingFaceDir, "--input_file", input, "--candidate_pool", pool,
            "--output_file", output, "--range_for_sampling", $"{RangeStart}-{RangeEnd}", "--negative_number", $"{NegativeNumber}",
            "--version", "llm-embedder", "--task", "qa", "--cache_dir", Path.Combine(dir, "cache")];
        var result = CliProcess.Run(args);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("0 rows topped up", result.Stderr);

        var queries = SmallEnglishRetrievalSet.Queries;
        var reference = OnnxBruteForce.Rank(
            OnnxBruteForce.ClsEmbeddings(PretrainedOnnxModels.ArcticXs, queries.Select(q => QueryInstruction + q.Query).ToArray()),
            OnnxBruteForce.ClsEmbeddings(PretrainedOnnxModels.ArcticXs, poolTexts.Select(t => KeyInstruction + t).ToArray()));
        var rows = File.ReadAllLines(output).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        Assert.Equal(queries.Length, rows.Length);
        int insideByPosition = 0, mined = 0;
        for (int q = 0; q < rows.Length; q++)
        {
            var (order, scores) = reference[q];
            var positives = rows[q]["pos"]!.AsArray().Select(p => p!.GetValue<string>()).ToHashSet();
            var negatives = rows[q]["neg"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray();
            Assert.Equal(NegativeNumber, negatives.Length);
            Assert.Equal(NegativeNumber, negatives.Distinct().Count());
            Assert.DoesNotContain(negatives, positives.Contains);
            Assert.DoesNotContain(queries[q].Query, negatives);
            foreach (var negative in negatives)
            {
                int poolIndex = Array.IndexOf(poolTexts, negative);
                Assert.True(poolIndex >= 0, $"'{negative}' is not a pool text");
                int position = Array.IndexOf(order, poolIndex);
                // Outside the range only when its score ties the boundary's within float precision.
                bool inside = position >= RangeStart && position < RangeEnd;
                Assert.True(inside
                    || Math.Abs(scores[poolIndex] - scores[order[RangeStart]]) < 1e-4
                    || Math.Abs(scores[poolIndex] - scores[order[RangeEnd - 1]]) < 1e-4,
                    $"query {q}: '{negative}' is at position {position} of the reference ranking, outside {RangeStart}-{RangeEnd}");
                insideByPosition += inside ? 1 : 0;
                mined++;
            }
            Assert.Equal(q, rows[q]["query_id"]!.GetValue<int>());
            Assert.Equal("qa", rows[q]["task"]!.GetValue<string>());
            Assert.False(rows[q].ContainsKey("teacher_scores"));
        }
        Assert.True(insideByPosition >= mined - 2, $"{insideByPosition} of {mined} negatives inside the range by position");

        var firstBytes = File.ReadAllBytes(output);
        var again = CliProcess.Run(args);
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Contains("pool embeddings from cache", again.Stderr);
        Assert.Equal(firstBytes, File.ReadAllBytes(output));

        var otherSeed = CliProcess.Run([.. args, "--seed", "7"]);
        Assert.True(otherSeed.ExitCode == 0, otherSeed.Stderr);
        Assert.NotEqual(firstBytes, File.ReadAllBytes(output));
    }

    [Fact]
    public void WithoutACandidatePoolTheInputsOwnTextsAreThePoolAndShortRowsAreToppedUp()
    {
        var (input, _, _) = WriteInputs();
        var output = Path.Combine(dir, "mined.jsonl");
        var result = CliProcess.Run(["mine", "--model", PretrainedOnnxModels.ArcticXs.HuggingFaceDir, "--input_file", input, "--output_file", output,
            "--range_for_sampling", "2-8", "--negative_number", "10", "--no_cache"]);
        Assert.True(result.ExitCode == 0, result.Stderr);

        var inputRows = File.ReadAllLines(input).Select(line => JsonNode.Parse(line)!).ToArray();
        var inputTexts = inputRows.SelectMany(r => r["pos"]!.AsArray().Concat(r["neg"]!.AsArray())).Select(t => t!.GetValue<string>()).ToHashSet();
        var rows = File.ReadAllLines(output).Select(line => JsonNode.Parse(line)!).ToArray();
        for (int q = 0; q < rows.Length; q++)
        {
            var negatives = rows[q]["neg"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray();
            var positives = rows[q]["pos"]!.AsArray().Select(p => p!.GetValue<string>()).ToHashSet();
            Assert.Equal(10, negatives.Length); // 6 positions in range, the rest topped up
            Assert.All(negatives, n => Assert.Contains(n, inputTexts));
            Assert.DoesNotContain(negatives, positives.Contains);
            Assert.Equal(10, negatives.Distinct().Count());
        }
        Assert.Contains($"{rows.Length} rows topped up", result.Stderr);
    }

    /// <summary>
    /// Training rows for the 20 queries (pos: their passages' key texts; one old neg; teacher_scores to be dropped),
    /// and a pool of the 50 passages plus the queries themselves, so that a query finds itself in the pool.
    /// </summary>
    private (string Input, string Pool, string[] PoolTexts) WriteInputs()
    {
        var queries = SmallEnglishRetrievalSet.Queries;
        var input = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(input, queries.Select((q, i) => JsonSerializer.Serialize(new
        {
            query = q.Query,
            pos = q.Relevant.Select(SmallEnglishRetrievalSet.KeyText).ToArray(),
            neg = new[] { SmallEnglishRetrievalSet.KeyText((q.Relevant[0] + 25) % SmallEnglishRetrievalSet.Passages.Length) },
            teacher_scores = new[] { 1.0, 0.0 },
            task = "qa",
            query_id = i,
        })));
        var poolTexts = Enumerable.Range(0, SmallEnglishRetrievalSet.Passages.Length).Select(SmallEnglishRetrievalSet.KeyText)
            .Concat(queries.Select(q => q.Query)).ToArray();
        var pool = Path.Combine(dir, "pool.jsonl");
        File.WriteAllLines(pool, poolTexts.Select(t => JsonSerializer.Serialize(new { text = t })));
        return (input, pool, poolTexts);
    }
}
