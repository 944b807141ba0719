using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// eval, mine, export and encode with an output they could not write: one error line before any model is loaded or
/// text encoded (no progress line), and nothing created or changed.
/// </summary>
public sealed class OutputChecksBeforeWorkTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("out-checks");
    private readonly string model;
    private readonly string evalData;
    private readonly string corpus;
    private readonly string occupied;

    public OutputChecksBeforeWorkTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        corpus = Path.Combine(dir, "corpus.jsonl");
        File.WriteAllLines(corpus, ["""{"text": "北京是中国的首都。"}""", """{"text": "长江是中国最长的河流。"}"""]);
        evalData = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(evalData, ["""{"query": "中国的首都是哪里", "pos_index": [0]}"""]);
        occupied = Path.Combine(dir, "occupied");
        File.WriteAllText(occupied, "a file");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private List<string> Tree() => Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories)
        .Select(path => $"{path} {File.GetLastWriteTimeUtc(path).Ticks}").Order(StringComparer.Ordinal).ToList();

    private void AssertRefusedBeforeWork(string[] args, string expectedLine)
    {
        var before = Tree();
        var result = CliProcess.Run(args);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("llm-embedder: error: " + expectedLine, Assert.Single(result.StderrLines));
        Assert.DoesNotContain("encod", result.Stderr);
        Assert.Equal(before, Tree());
        Assert.Equal("a file", File.ReadAllText(occupied));
    }

    private string[] Eval(params string[] extra) =>
        ["eval", "--model", model, "--eval_data", evalData, "--corpus", corpus, "--key_template", "{text}", "--no_cache", "--cutoffs", "1", "--hits", "2", .. extra];

    [Fact]
    public void EvalOutputDirThatIsAFile() =>
        AssertRefusedBeforeWork(Eval("--output_dir", occupied), $"--output_dir {occupied}: is a file; expected a folder");

    [Fact]
    public void EvalOutputDirUnderAFile() =>
        AssertRefusedBeforeWork(Eval("--output_dir", Path.Combine(occupied, "eval")),
            $"--output_dir {Path.Combine(occupied, "eval")}: cannot be made, {occupied} is a file, not a folder");

    [Fact]
    public void EvalCompareChartThatIsAFolder()
    {
        var chart = Path.Combine(dir, "chart.png");
        Directory.CreateDirectory(chart);
        AssertRefusedBeforeWork(Eval("--compare", model, "--chart", chart), $"--chart {chart}: is a folder; expected a file name");
    }

    [Fact]
    public void MineOutputFileThatIsAFolder()
    {
        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllText(train, """{"query": "中国的首都是哪里", "pos": ["北京是中国的首都。"], "neg": ["长江是中国最长的河流。"]}""" + "\n");
        AssertRefusedBeforeWork(["mine", "--model", model, "--input_file", train, "--output_file", dir, "--no_cache"],
            $"--output_file {dir}: is a folder; expected a file name");
    }

    [Fact]
    public void ExportOutputDirThatIsAFile() =>
        AssertRefusedBeforeWork(["export", "--encoder", model, "--output_dir", occupied], $"--output_dir {occupied}: is a file; expected a folder");

    [Fact]
    public void EncodeOutputUnderAFile()
    {
        var input = Path.Combine(dir, "input.txt");
        File.WriteAllText(input, "今天星期几\n");
        var output = Path.Combine(occupied, "x.npy");
        AssertRefusedBeforeWork(["encode", "--model", model, "--input", input, "--output", output],
            $"--output {output}: cannot be made, {occupied} is a file, not a folder");
    }
}
