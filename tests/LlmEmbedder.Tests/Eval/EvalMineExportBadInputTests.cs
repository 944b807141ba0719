using System.Text.Json;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// eval, mine and export on bad inputs: each gives exactly one clear line on stderr ("llm-embedder: error: ..."
/// naming the file and line where there is one), a non-zero exit, and no output left behind.
/// </summary>
public sealed class EvalMineExportBadInputTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("eval-bad");
    private readonly string model;
    private readonly string evalData;
    private readonly string corpus;
    private readonly string output;

    public EvalMineExportBadInputTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        corpus = Path.Combine(dir, "corpus.jsonl");
        File.WriteAllLines(corpus, [
            """{"title": "北京", "text": "北京是中国的首都。"}""",
            """{"title": "上海", "text": "上海是中国最大的城市。"}""",
            """{"title": "长江", "text": "长江是中国最长的河流。"}""",
        ]);
        evalData = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(evalData, [
            """{"query": "中国的首都是哪里", "pos_index": [0]}""",
            """{"query": "最长的河", "pos_index": [2]}""",
        ]);
        output = Path.Combine(dir, "out");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private CliProcess.Result Eval(params string[] extra) =>
        CliProcess.Run(["eval", "--model", model, "--output_dir", output, "--no_cache", "--cutoffs", "1", "2", "--hits", "3", .. extra]);

    private void AssertOneErrorLine(CliProcess.Result result, string expectedFragment)
    {
        Assert.True(result.ExitCode != 0, $"exit code 0; stderr: {result.Stderr}");
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith("llm-embedder: error: ", line);
        Assert.Contains(expectedFragment, line);
        Assert.False(Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any(), "output was left behind");
        Assert.Empty(Directory.GetFiles(dir, "*.tmp*", SearchOption.AllDirectories));
    }

    [Fact]
    public void TinyModelEvaluatesMinesAndExportsWhenNothingIsWrong()
    {
        var eval = Eval("--eval_data", "llm-embedder:eval.jsonl", "--corpus", "llm-embedder:corpus.jsonl", "--data_root", dir);
        Assert.True(eval.ExitCode == 0, eval.Stderr);
        Assert.True(File.Exists(Path.Combine(output, "metrics.json")));

        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllText(train, """{"query": "中国的首都是哪里", "pos": ["北京是中国的首都。"], "neg": ["上海是中国最大的城市。", "长江是中国最长的河流。"]}""" + "\n");
        var mine = CliProcess.Run(["mine", "--model", model, "--input_file", train, "--output_file", Path.Combine(dir, "mined.jsonl"), "--no_cache",
            "--range_for_sampling", "0-3", "--negative_number", "2"]);
        Assert.True(mine.ExitCode == 0, mine.Stderr);

        var export = CliProcess.Run(["export", "--encoder", model, "--output_dir", Path.Combine(dir, "st")]);
        Assert.True(export.ExitCode == 0, export.Stderr);
    }

    [Fact]
    public void PosIndexOutOfRange()
    {
        File.AppendAllText(evalData, """{"query": "上海", "pos_index": [1, 3]}""" + "\n");
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus), "eval.jsonl:3: pos_index 3 is out of range: the corpus");
    }

    [Fact]
    public void CorpusRowMissingAFieldOfTheKeyTemplate()
    {
        File.WriteAllLines(corpus, ["""{"title": "北京", "text": "北京是中国的首都。"}""", """{"text": "上海是中国最大的城市。"}"""]);
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus), "corpus.jsonl:2: no field 'title' (needed by key_template)");
    }

    [Fact]
    public void KeyTemplateNamingAFieldNoRowHas()
    {
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--key_template", "{title}: {body}"),
            "corpus.jsonl:1: no field 'body' (needed by key_template)");
    }

    [Fact]
    public void EmptyCorpus()
    {
        File.WriteAllText(corpus, "");
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus), "corpus.jsonl: the corpus is empty");
    }

    [Fact]
    public void MissingEvalFileUnderTheDataRoot() =>
        AssertOneErrorLine(Eval("--eval_data", "llm-embedder:qa/nq/test.jsonl", "--data_root", dir, "--corpus", corpus),
            $"{Path.Combine(dir, "qa/nq/test.jsonl")}: file or folder not found (from llm-embedder:qa/nq/test.jsonl with --data_root {dir})");

    [Fact]
    public void MalformedEvalLine()
    {
        File.AppendAllText(evalData, "{\"query\": \"x\", \"pos_index\": [0]\n");
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus), "eval.jsonl:3: malformed JSON");
    }

    [Fact]
    public void QrelsNamingAnUnknownCorpusId()
    {
        var beir = Beir(["q1\tdoc1\t1", "q2\tdoc9\t1"]);
        AssertOneErrorLine(Eval("--eval_data", beir), "test.tsv:3: corpus-id 'doc9' is not in");
    }

    [Fact]
    public void QrelsNamingAnUnknownQueryId()
    {
        var beir = Beir(["q1\tdoc1\t1", "q7\tdoc2\t1"]);
        AssertOneErrorLine(Eval("--eval_data", beir), "test.tsv:3: query-id 'q7' is not in");
    }

    [Fact]
    public void MissingSplit()
    {
        var beir = Beir(["q1\tdoc1\t1"]);
        AssertOneErrorLine(Eval("--eval_data", beir, "--split", "dev"), "dev.tsv: file not found (splits present: test)");
    }

    [Fact]
    public void HitsBelowTheLargestCutoff() =>
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--cutoffs", "1", "10"), "hits (3) is smaller than the largest cutoff (10)");

    [Fact]
    public void UnknownMetric() =>
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--metrics", "map"), "unknown metric 'map'");

    [Fact]
    public void TaskForAModelWithoutInstructions() =>
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--task", "qa"), "--task qa: the model has no instructions (add some with --version)");

    [Fact]
    public void TaskTheModelHasNoInstructionFor() =>
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--version", "llm-embedder", "--task", "nope"),
            "--task \"nope\": the model has no instruction for it (tasks: chat, convsearch, icl, lrlm, qa, tool)");

    [Fact]
    public void NoTaskForAModelWithSeveralTasks()
    {
        var texts = Path.Combine(dir, "texts.txt");
        File.WriteAllLines(texts, ["北京"]);
        AssertOneErrorLine(CliProcess.Run(["encode", "--model", model, "--input", texts, "--output", Path.Combine(output, "x.npy"), "--version", "llm-embedder"]),
            "the model has an instruction per task (chat, convsearch, icl, lrlm, qa, tool); say which with --task");
    }

    [Fact]
    public void MissingCompareModel() =>
        AssertOneErrorLine(Eval("--eval_data", evalData, "--corpus", corpus, "--compare", Path.Combine(dir, "nope")), $"{Path.Combine(dir, "nope")}: folder not found");

    [Fact]
    public void MineRowWithoutPositives()
    {
        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(train, ["""{"query": "a", "pos": ["b"]}""", """{"query": "c", "neg": ["d"]}"""]);
        AssertOneErrorLine(CliProcess.Run(["mine", "--model", model, "--input_file", train, "--output_file", Path.Combine(output, "mined.jsonl")]),
            "train.jsonl:2: no \"pos\" field");
    }

    [Fact]
    public void MineBadRange()
    {
        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllText(train, """{"query": "a", "pos": ["b"]}""" + "\n");
        AssertOneErrorLine(CliProcess.Run(["mine", "--model", model, "--input_file", train, "--output_file", Path.Combine(output, "mined.jsonl"),
            "--range_for_sampling", "210-10"]), "range_for_sampling '210-10'");
    }

    [Fact]
    public void MineEmptyCandidatePool()
    {
        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllText(train, """{"query": "a", "pos": ["b"]}""" + "\n");
        var pool = Path.Combine(dir, "pool.jsonl");
        File.WriteAllText(pool, "");
        AssertOneErrorLine(CliProcess.Run(["mine", "--model", model, "--input_file", train, "--output_file", Path.Combine(output, "mined.jsonl"),
            "--candidate_pool", pool]), "pool.jsonl: input file is empty");
    }

    [Fact]
    public void ExportOfAMissingFolder() =>
        AssertOneErrorLine(CliProcess.Run(["export", "--encoder", Path.Combine(dir, "nope"), "--output_dir", output]), "model folder not found");

    [Fact]
    public void ExportOfUntiedEncoders()
    {
        var run = Path.Combine(dir, "run");
        foreach (var side in new[] { "query_encoder", "key_encoder" })
        {
            Directory.CreateDirectory(Path.Combine(run, side));
            foreach (var file in Directory.GetFiles(model)) File.Copy(file, Path.Combine(run, side, Path.GetFileName(file)));
        }
        AssertOneErrorLine(CliProcess.Run(["export", "--encoder", run, "--output_dir", output]), "untied query_encoder/ and key_encoder/");
    }

    [Fact]
    public void ExportIntoAFolderThatIsNotAnEarlierExport()
    {
        var target = Path.Combine(dir, "precious");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "notes.txt"), "keep me");
        var result = CliProcess.Run(["export", "--encoder", model, "--output_dir", target]);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("is not an earlier export", Assert.Single(result.StderrLines));
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(target).Select(Path.GetFileName));
    }

    [Fact]
    public void ExportOfADenseRunWithoutItsDensePooler()
    {
        var run = Path.Combine(dir, "run");
        Directory.CreateDirectory(run);
        Directory.Move(model, Path.Combine(run, "encoder"));
        File.WriteAllText(Path.Combine(run, "args.json"), JsonSerializer.Serialize(new { model_args = new { pooling_method = new[] { "cls", "dense" } } }));
        AssertOneErrorLine(CliProcess.Run(["export", "--encoder", run, "--output_dir", output]), "says the model has a dense pooler but");
    }

    [Fact]
    public void ExportWithATaskTheVersionDoesNotHave() =>
        AssertOneErrorLine(CliProcess.Run(["export", "--encoder", model, "--output_dir", output, "--version", "llm-embedder", "--task", "nope"]),
            "--task \"nope\": the model has no instruction for it (tasks: chat, convsearch, icl, lrlm, qa, tool)");

    private string Beir(string[] qrels)
    {
        var beir = Path.Combine(dir, "beir");
        Directory.CreateDirectory(Path.Combine(beir, "qrels"));
        File.WriteAllLines(Path.Combine(beir, "corpus.jsonl"), [
            """{"_id": "doc1", "title": "北京", "text": "北京是中国的首都。"}""",
            """{"_id": "doc2", "text": "长江是中国最长的河流。"}""",
        ]);
        File.WriteAllLines(Path.Combine(beir, "queries.jsonl"), ["""{"_id": "q1", "text": "中国的首都是哪里"}""", """{"_id": "q2", "text": "最长的河"}"""]);
        File.WriteAllLines(Path.Combine(beir, "qrels", "test.tsv"), ["query-id\tcorpus-id\tscore", .. qrels]);
        return beir;
    }
}
