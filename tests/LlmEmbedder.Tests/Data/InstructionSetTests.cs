using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

public sealed class InstructionSetTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("instructions");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string WriteFile(string json)
    {
        var path = Path.Combine(_dir, "instructions.json");
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>The strings of docs/REFERENCE.md §3 (copied from the reference's TASK_CONFIG), character for character.</summary>
    [Theory]
    [InlineData("llm-embedder", "qa", "Represent this query for retrieving relevant documents: ", "Represent this document for retrieval: ")]
    [InlineData("llm-embedder", "convsearch", "Encode this query and context for searching relevant passages: ", "Encode this passage for retrieval: ")]
    [InlineData("llm-embedder", "chat", "Embed this dialogue to find useful historical dialogues: ", "Embed this historical dialogue for retrieval: ")]
    [InlineData("llm-embedder", "lrlm", "Embed this text chunk for finding useful historical chunks: ", "Embed this historical text chunk for retrieval: ")]
    [InlineData("llm-embedder", "icl", "Convert this example into vector to look for useful examples: ", "Convert this example into vector for retrieval: ")]
    [InlineData("llm-embedder", "tool", "Transform this user request for fetching helpful tool descriptions: ", "Transform this tool description for retrieval: ")]
    [InlineData("bge", "qa", "Represent this sentence for searching relevant passages: ", "")]
    [InlineData("bge", "anything", "Represent this sentence for searching relevant passages: ", "")]
    [InlineData("e5", "icl", "query: ", "passage: ")]
    [InlineData("zh_llm_embedder", "icl", "为这个句子生成表示以用于检索相关文章: ", "")]
    public void BuiltInInstructionsMatchTheSpec(string version, string task, string query, string key)
    {
        var instruction = InstructionSet.BuiltIn.Get(version).InstructionFor(task);
        Assert.Equal(new Instruction(query, key), instruction);
        Assert.Equal(query + "今天星期几", instruction.ApplyToQuery("今天星期几"));
        Assert.Equal(key + "文档", instruction.ApplyToKey("文档"));
    }

    [Fact]
    public void UnknownVersionAndTaskNameWhatIsAvailable()
    {
        Assert.Equal("unknown instruction version \"zh\" (available: bge, e5, llm-embedder, zh_llm_embedder; add one with --instruction_file)",
            Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.Get("zh")).Message);
        Assert.Equal("version \"llm-embedder\" has no instruction for task \"rerank\" (it has: chat, convsearch, icl, lrlm, qa, tool)",
            Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.Get("llm-embedder").InstructionFor("rerank")).Message);
        Assert.Equal("version \"zh_llm_embedder\" has no instruction for task \"qa\" (it has: icl)",
            Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.Get("zh_llm_embedder").InstructionFor("qa")).Message);
        Assert.Equal("version \"llm-embedder\" has no training config for task \"rerank\" (it has: chat, convsearch, icl, lrlm, qa, tool)",
            Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.Get("llm-embedder").TrainingFor("rerank")).Message);
        Assert.StartsWith("version \"bge\" has no training config, so --use_train_config cannot be used with it",
            Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.Get("bge").TrainingFor("qa")).Message);
    }

    /// <summary>The per-task table of docs/REFERENCE.md §3 applied over command-line values that differ from every listed value.</summary>
    [Fact]
    public void LlmEmbedderTrainingTableOverridesOnlyWhatItLists()
    {
        var commandLine = new TaskTrainingConfig(PositiveSelection.TeacherPos, NegativeSelection.First, MaxSampleNum: 7,
            TeacherScoresMargin: 0.5, TeacherScoresMin: 0.3, ContrastiveWeight: 0.2, DistillWeight: 0.6,
            TeacherTemperature: 2.0, StudentTemperature: 3.0, StableDistill: true);
        TaskTrainingConfig For(string task) => InstructionSet.BuiltIn.Get("llm-embedder").TrainingFor(task).ApplyTo(commandLine);

        Assert.Equal(commandLine with { SelectPositive = PositiveSelection.First, SelectNegative = NegativeSelection.Random, ContrastiveWeight = 0, StableDistill = true }, For("qa"));
        Assert.Equal(commandLine with { SelectPositive = PositiveSelection.First, SelectNegative = NegativeSelection.Random, DistillWeight = 0, StableDistill = false }, For("convsearch"));
        Assert.Equal(commandLine with
        {
            SelectPositive = PositiveSelection.Teacher, SelectNegative = NegativeSelection.Random, ContrastiveWeight = 0, DistillWeight = 1.0,
            TeacherTemperature = 0.1, StableDistill = false,
        }, For("chat"));
        Assert.Equal(commandLine with
        {
            SelectPositive = PositiveSelection.Teacher, SelectNegative = NegativeSelection.Random, MaxSampleNum = 10000, TeacherScoresMargin = 0.1,
            ContrastiveWeight = 0, DistillWeight = 1.0, TeacherTemperature = 0.1, StableDistill = false,
        }, For("lrlm"));
        Assert.Equal(commandLine with { SelectPositive = PositiveSelection.Random, SelectNegative = NegativeSelection.Random, ContrastiveWeight = 0, StableDistill = true }, For("icl"));
        Assert.Equal(commandLine with { SelectPositive = PositiveSelection.First, SelectNegative = NegativeSelection.Random, DistillWeight = 0, StableDistill = false }, For("tool"));
    }

    [Fact]
    public void DefaultsAreTheRunDenseCommandLineDefaults()
    {
        Assert.Equal(new TaskTrainingConfig(PositiveSelection.First, NegativeSelection.Random, null, null, null, 0.2, 1.0, 1.0, 1.0, false),
            new TaskTrainingConfig());
    }

    [Fact]
    public void InstructionFileAddsAndReplacesVersions()
    {
        var path = WriteFile("""
            {
              "zh_llm_embedder": {
                "instruction": {"icl": {"query": "为这个句子生成表示以用于检索相关文章: ", "key": ""}, "qa": {"query": "问: "}},
                "training": {"icl": {"select_positive": "random", "contrastive_weight": 0, "stable_distill": true, "teacher_scores_min": null}}
              },
              "bge": {"instruction": {"*": {"query": "检索: ", "key": "文档: "}}}
            }
            """);
        var set = InstructionSet.BuiltIn.WithFile(path);
        var zh = set.Get("zh_llm_embedder");
        Assert.Equal(new Instruction("问: ", ""), zh.InstructionFor("qa"));
        Assert.Equal(new TaskTrainingOverrides(SelectPositive: PositiveSelection.Random, ContrastiveWeight: 0, StableDistill: true), zh.TrainingFor("icl"));
        Assert.Equal(new TaskTrainingConfig(PositiveSelection.Random, ContrastiveWeight: 0, StableDistill: true, DistillWeight: 0.5),
            zh.TrainingFor("icl").ApplyTo(new TaskTrainingConfig(DistillWeight: 0.5)));
        Assert.Equal(new Instruction("检索: ", "文档: "), set.Get("bge").InstructionFor("anything"));
        // Untouched built-ins stay, and the built-in set itself is not modified.
        Assert.Equal(new Instruction("query: ", "passage: "), set.Get("e5").InstructionFor("qa"));
        Assert.Equal("", InstructionSet.BuiltIn.Get("bge").InstructionFor("x").Key);
    }

    [Theory]
    [InlineData("""{"v": {"instruction": {"icl": {"qeury": "x"}}}}""", "v.instruction.icl: unknown field \"qeury\" (expected \"query\" and \"key\")")]
    [InlineData("""{"v": {"instruction": {"icl": {"query": 1}}}}""", "v.instruction.icl.query: expected a string")]
    [InlineData("""{"v": {"instructions": {}}}""", "v: unknown section \"instructions\" (expected \"instruction\" and/or \"training\")")]
    [InlineData("""{"v": {"training": {"icl": {}}}}""", "v: no \"instruction\" entries")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"select_positive": "best"}}}}""", "v.training.icl.select_positive: \"best\" is not one of first | random | teacher | teacher-pos")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"select_negative": "teacher"}}}}""", "v.training.icl.select_negative: \"teacher\" is not one of random | first | teacher- | teacher+")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"temperature": 0.1}}}}""", "v.training.icl: unknown setting \"temperature\" (known: select_positive, select_negative, max_sample_num, teacher_scores_margin, teacher_scores_min, contrastive_weight, distill_weight, teacher_temperature, student_temperature, stable_distill)")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"stable_distill": "yes"}}}}""", "v.training.icl.stable_distill: expected true or false")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"max_sample_num": 2.5}}}}""", "v.training.icl.max_sample_num: expected a positive integer")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"distill_weight": "1"}}}}""", "v.training.icl.distill_weight: expected a number")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"teacher_temperature": 0}}}}""", "v.training.icl.teacher_temperature: must be > 0, got 0")]
    [InlineData("""{"v": {"instruction": {"icl": {}}, "training": {"icl": {"contrastive_weight": -1}}}}""", "v.training.icl.contrastive_weight: must be >= 0, got -1")]
    [InlineData("""["v"]""", "expected a JSON object of versions, like {\"zh_llm_embedder\": {\"instruction\": {...}}}")]
    [InlineData("""{}""", "no versions defined")]
    public void BadInstructionFileNamesTheFieldAtFault(string json, string expected)
    {
        var path = WriteFile(json);
        Assert.Equal($"{path}: {expected}", Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.WithFile(path)).Message);
    }

    [Fact]
    public void TruncatedInstructionFileIsNotValidJson()
    {
        var path = WriteFile("{\"v\": {\"instruction\":\n {\"icl\": {\"query\": \"x\"}}");
        Assert.StartsWith($"{path}: not valid JSON (line 2: ", Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.WithFile(path)).Message);
    }

    [Fact]
    public void MissingInstructionFile()
    {
        var path = Path.Combine(_dir, "none.json");
        Assert.Equal($"{path}: instruction file not found", Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.WithFile(path)).Message);
    }
}
