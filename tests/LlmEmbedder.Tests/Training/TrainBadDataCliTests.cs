using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// `llm-embedder train` on each bad training file of Data/Invalid: one error line naming the file and line (the
/// fixture's .expected text), a non-zero exit, and nothing written to output_dir; with --skip_bad_rows, a count.
/// </summary>
public sealed class TrainBadDataCliTests : IDisposable
{
    private static readonly string InvalidDir = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Invalid");
    private readonly string dir = TestPaths.NewTempDir("train-bad");
    private readonly string model;

    public TrainBadDataCliTests() => model = CliProcess.TinyChineseModel(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    public static TheoryData<string> BadFiles => new(
        "malformed_json", "missing_query", "pos_not_list", "pos_not_strings", "teacher_scores_wrong_length", "empty", "query_not_string",
        "not_utf8_gb18030", "not_utf8_nul_byte");

    private CliProcess.Result Train(string output, params string[] trainData) => CliProcess.Run([
        "train", "--query_encoder", model, "--output_dir", output, "--train_data", .. trainData,
        "--per_device_train_batch_size", "2", "--train_group_size", "2", "--max_steps", "1", "--dtype", "fp32",
    ]);

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void BadRowIsOneErrorWithFileAndLineAndNothingWritten(string name)
    {
        var file = Path.Combine(InvalidDir, name + ".jsonl");
        var output = Path.Combine(dir, "out-" + name);
        var result = Train(output, file);
        Assert.NotEqual(0, result.ExitCode);
        var line = Assert.Single(result.StderrLines);
        var expected = File.ReadAllText(Path.Combine(InvalidDir, name + ".expected")).Trim().Replace("{file}", file);
        Assert.Equal("llm-embedder: error: " + expected, line);
        Assert.False(Directory.Exists(output), "output_dir was created before the bad data was detected");
    }

    [Fact]
    public void MissingFile()
    {
        var output = Path.Combine(dir, "out-missing");
        var result = Train(output, Path.Combine(dir, "nope", "train.jsonl"));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("nope/train.jsonl", Assert.Single(result.StderrLines));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void MixedTasksWithoutInbatchSameDataset()
    {
        var output = Path.Combine(dir, "out-mixed");
        var result = Train(output, Path.Combine(InvalidDir, "mixed_tasks", "qa", "train.jsonl"), Path.Combine(InvalidDir, "mixed_tasks", "icl", "train.jsonl"));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Equal("llm-embedder: error: " + File.ReadAllText(Path.Combine(InvalidDir, "mixed_tasks.expected")).Trim(), Assert.Single(result.StderrLines));
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void SkipBadRowsCountsThemAndTrains()
    {
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 8, task: "qa", seed: 1, negatives: 3);
        File.AppendAllText(data, "{not json\n{\"pos\": [\"no query\"], \"neg\": [\"x\"], \"task\": \"qa\"}\n");
        var output = Path.Combine(dir, "out-skip");
        var result = CliProcess.Run([
            "train", "--query_encoder", model, "--output_dir", output, "--train_data", data, "--skip_bad_rows",
            "--per_device_train_batch_size", "2", "--train_group_size", "2", "--max_steps", "1", "--dtype", "fp32",
        ]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.Contains("2 bad rows skipped", result.Stdout.Replace("\n", ""));
    }
}
