using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

public sealed class TrainingJsonlTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("jsonl");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string relativePath, params string[] lines)
    {
        var path = Path.Combine(_dir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void ParsesTheFieldsOfTheRecipeRows()
    {
        var file = Write("icl/train.jsonl",
            """{"query":"今天星期几","pos":["今天是星期一","周一"],"neg":["明天下雨"],"teacher_scores":[3,2,1],"task":"icl","answers":["星期一"],"query_id":7}""",
            "",
            """{"query":"北京的天气","pos":["晴"],"neg":["雨","雪"],"teacher_scores":[1, 0.25, -2e-1],"task":"icl"}""");
        var read = TrainingJsonl.ReadFile(file);
        Assert.Equal(2, read.Rows.Count);
        var first = read.Rows[0];
        Assert.Equal(("今天星期几", 1L, "icl"), (first.Query, first.Line, first.Task));
        Assert.Equal(["今天是星期一", "周一"], first.Pos);
        Assert.Equal(["明天下雨"], first.Neg);
        Assert.Equal([3.0, 2.0, 1.0], first.TeacherScores!);
        // The blank line 2 is skipped but still counted, so messages point at the real line.
        Assert.Equal(3L, read.Rows[1].Line);
        Assert.Equal([1.0, 0.25, -0.2], read.Rows[1].TeacherScores!);
    }

    [Fact]
    public void HistoryRowsHaveNoPositivesAndTheHistoryAsNegatives()
    {
        var file = Write("msc/train.jsonl",
            """{"query":"你好","pos":["ignored"],"neg":["ignored"],"history":["昨天聊了天气","前天聊了电影"],"teacher_scores":[0.1,0.9],"task":"chat"}""");
        var row = TrainingJsonl.ReadFile(file).Rows.Single();
        Assert.Empty(row.Pos);
        Assert.Equal(["昨天聊了天气", "前天聊了电影"], row.Neg);
        Assert.True(row.FromHistory);
    }

    public static TheoryData<string> InvalidFixtures()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(InvalidDir, "*.jsonl").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    private static string InvalidDir => Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Invalid");

    private static string Expected(string name, string file) =>
        File.ReadAllText(Path.Combine(InvalidDir, name)).TrimEnd('\n', '\r').Replace("{file}", file);

    /// <summary>Each file in Data/Invalid gives exactly the message in its .expected twin.</summary>
    [Theory]
    [MemberData(nameof(InvalidFixtures))]
    public void InvalidFixtureGivesItsExpectedMessage(string fixture)
    {
        var file = Path.Combine(InvalidDir, fixture);
        var error = Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([file])));
        Assert.Equal(Expected(Path.ChangeExtension(fixture, ".expected"), file), error.Message);
    }

    [Fact]
    public void EveryInvalidFixtureHasItsExpectedMessage()
    {
        var fixtures = Directory.EnumerateFiles(InvalidDir, "*.jsonl").Select(Path.GetFileNameWithoutExtension).Order().ToArray();
        var expectations = Directory.EnumerateFiles(InvalidDir, "*.expected").Select(Path.GetFileNameWithoutExtension)
            .Where(name => name != "mixed_tasks").Order().ToArray();
        Assert.Equal(fixtures, expectations);
        Assert.True(fixtures.Length >= 15, $"only {fixtures.Length} fixtures found in {InvalidDir}");
    }

    [Fact]
    public void MixedTasksWithoutInbatchSameDatasetIsAnError()
    {
        var data = TrainingData.Load(new TrainingDataOptions(
            [Path.Combine(InvalidDir, "mixed_tasks", "qa", "train.jsonl"), Path.Combine(InvalidDir, "mixed_tasks", "icl", "train.jsonl")]));
        var error = Assert.Throws<EmbedderException>(() => new BatchSampler(InBatchSameDataset.None, data.Spans, 1, 1, 0, seed: 42));
        Assert.Equal(Expected("mixed_tasks.expected", ""), error.Message);
        // The same data is fine once batches keep to one dataset.
        Assert.Equal(2, new BatchSampler(InBatchSameDataset.Epoch, data.Spans, 1, 1, 0, seed: 42).StepsPerEpoch);
    }

    [Fact]
    public void SkipBadRowsCountsEachSkippedRowPerFile()
    {
        var good = """{"query":"问","pos":["答"],"neg":["错"],"task":"qa"}""";
        var noisy = Write("noisy/train.jsonl", good, "{not json", """{"pos":["答"],"neg":["错"],"task":"qa"}""", good,
            """{"query":"问","pos":["答"],"neg":["错"],"teacher_scores":[1],"task":"qa"}""", good);
        var clean = Write("clean/train.jsonl", good, good);

        var strict = Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([noisy, clean])));
        Assert.Equal($"{noisy}:2: malformed JSON at column 2", strict.Message);

        var data = TrainingData.Load(new TrainingDataOptions([noisy, clean], SkipBadRows: true));
        Assert.Equal((3, 3, $"{noisy}:2: malformed JSON at column 2"),
            (data.Datasets[0].RowsRead, data.Datasets[0].SkippedRows, data.Datasets[0].FirstSkippedError));
        Assert.Equal((2, 0), (data.Datasets[1].RowsRead, data.Datasets[1].SkippedRows));
        Assert.Equal(5, data.Groups.Count);

        var readFile = TrainingJsonl.ReadFile(noisy, skipBadRows: true);
        Assert.Equal((3, 3), (readFile.Rows.Count, readFile.SkippedRows));
        Assert.Equal([1L, 4L, 6L], readFile.Rows.Select(r => r.Line));
    }

    [Fact]
    public void SkipBadRowsStillFailsWhenNothingIsLeft()
    {
        var file = Write("bad/train.jsonl", "{", "[]");
        var error = Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([file], SkipBadRows: true)));
        Assert.Equal($"{file}: no valid training rows (2 bad rows skipped; the first: {file}:1: malformed JSON at column 2)", error.Message);
    }

    [Fact]
    public void DataRootPrefixIsRewrittenBeforeTheFileIsLookedFor()
    {
        var file = Write("data/qa/nq/train.jsonl", """{"query":"q","pos":["p"],"neg":["n"],"task":"qa"}""");
        var root = Path.Combine(_dir, "data");
        Assert.Equal([file], TrainingJsonl.ResolveTrainData(["llm-embedder:qa/nq/train.jsonl"], root));

        var missing = Assert.Throws<EmbedderException>(() => TrainingJsonl.ResolveTrainData(["llm-embedder:qa/msmarco/train.jsonl"], root));
        Assert.Equal($"{Path.Combine(root, "qa/msmarco/train.jsonl")}: training file not found (from llm-embedder:qa/msmarco/train.jsonl with --data_root {root})",
            missing.Message);
        var plain = Path.Combine(_dir, "nowhere.jsonl");
        Assert.Equal($"{plain}: training file not found",
            Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([plain]))).Message);
    }

    [Fact]
    public void GlobPatternsExpandInsideAListOfEntries()
    {
        var row = """{"query":"q","pos":["p"],"neg":["n"],"task":"qa"}""";
        var b = Write("data/b/train.jsonl", row);
        var a = Write("data/a/train.jsonl", row);
        Write("data/a/notes.txt", "not training data");
        Write("data/.hidden/train.jsonl", row);
        var single = Write("extra/train.jsonl", row);

        var resolved = TrainingJsonl.ResolveTrainData([Path.Combine(_dir, "data/*/*.jsonl"), single, "llm-embedder:?/train.jsonl"], Path.Combine(_dir, "data"));
        Assert.Equal([a, b, single, a, b], resolved);

        var pattern = Path.Combine(_dir, "data/*/dev.jsonl");
        Assert.Equal($"{pattern}: no file matches this pattern",
            Assert.Throws<EmbedderException>(() => TrainingJsonl.ResolveTrainData([pattern], _dir)).Message);
    }
}
