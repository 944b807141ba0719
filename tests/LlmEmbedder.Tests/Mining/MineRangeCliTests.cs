using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Mining;

/// <summary>
/// mine --range_for_sampling against the size of the pool: a range starting past it is an error before anything is
/// encoded; one ending past it is clamped and said; a row that still gets no negative is reported, never silent.
/// </summary>
public sealed class MineRangeCliTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("mine-range");
    private readonly string model;
    private readonly string input;
    private readonly string output;

    public MineRangeCliTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        input = Path.Combine(dir, "train.jsonl");
        output = Path.Combine(dir, "mined.jsonl");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private CliProcess.Result Mine(string range, int negatives) => CliProcess.Run(["mine", "--model", model, "--input_file", input, "--output_file", output,
        "--no_cache", "--range_for_sampling", range, "--negative_number", negatives.ToString()]);

    private void WriteRows(params string[] rows) => File.WriteAllLines(input, rows);

    private const string CapitalRow =
        """{"query": "中国的首都是哪里", "pos": ["北京是中国的首都。"], "neg": ["上海是中国最大的城市。", "长江是中国最长的河流。", "西湖在杭州。"]}""";

    [Fact]
    public void RangeStartingPastThePoolIsAnErrorBeforeEncoding()
    {
        WriteRows(CapitalRow);   // pool: 4 texts
        var result = Mine("500-600", 2);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("llm-embedder: error: --range_for_sampling 500-600 starts past the pool of 4 texts (positions 0-3); " +
                     "start lower or give a larger --candidate_pool", Assert.Single(result.StderrLines));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void RangeEndingPastThePoolIsClampedAndSaid()
    {
        WriteRows(CapitalRow, """{"query": "最长的河", "pos": ["长江是中国最长的河流。"]}""");
        var result = Mine("1-210", 2);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains($"wrote {output}: 2 rows, 2 negatives each from positions 1-4 of a pool of 4 (--range_for_sampling 1-210 ends past the pool; pool embeddings encoded)",
            result.StderrLines.Last());
        Assert.DoesNotContain("no negative", result.Stderr);
        foreach (var line in File.ReadAllLines(output))
            Assert.Equal(2, JsonNode.Parse(line)!["neg"]!.AsArray().Count);
    }

    [Fact]
    public void RowLeftWithoutANegativeIsReported()
    {
        // A one-text pool that is the third row's own positive: that row has no candidate at all.
        WriteRows(CapitalRow, """{"query": "西湖", "pos": ["西湖在杭州。"]}""", """{"query": "熊猫", "pos": ["熊猫生活在四川。"]}""");
        File.WriteAllText(Path.Combine(dir, "pool.txt"), "熊猫生活在四川。\n");
        var result = CliProcess.Run(["mine", "--model", model, "--input_file", input, "--output_file", output, "--no_cache",
            "--candidate_pool", Path.Combine(dir, "pool.txt"), "--range_for_sampling", "0-1", "--negative_number", "1"]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains($", 1 still short (the pool has too few usable texts), 1 of them with no negative at all (\"neg\": [], first {input}:3; training drops such rows)",
            result.StderrLines.Last());
        var negatives = File.ReadAllLines(output).Select(line => JsonNode.Parse(line)!["neg"]!.AsArray().Count).ToList();
        Assert.Equal([1, 1, 0], negatives);
    }
}
