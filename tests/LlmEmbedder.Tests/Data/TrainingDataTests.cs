using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

public sealed class TrainingDataTests : IDisposable
{
    private readonly string _dir = TestPaths.NewTempDir("trainingdata");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string relativePath, IEnumerable<string> lines)
    {
        var path = Path.Combine(_dir, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, lines);
        return path;
    }

    private static IEnumerable<string> Rows(string task, int count, int negatives = 6, bool withScores = false) =>
        Enumerable.Range(0, count).Select(i =>
        {
            var negs = string.Join(",", Enumerable.Range(0, negatives).Select(n => $"\"neg{i}-{n}\""));
            var scores = withScores ? $",\"teacher_scores\":[{string.Join(",", Enumerable.Range(0, negatives + 1).Select(s => (s * 0.1).ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)))}]" : "";
            return $"{{\"query\":\"query{i}\",\"pos\":[\"pos{i}\"],\"neg\":[{negs}],\"task\":\"{task}\"{scores}}}";
        });

    [Fact]
    public void DatasetsAreNamedAfterTheirDirectoryWithSuffixesForRepeats()
    {
        var nq = Write("qa/nq/train.jsonl", Rows("qa", 3));
        var otherNq = Write("other/nq/dev.jsonl", Rows("qa", 2));
        var icl = Write("icl/train.jsonl", Rows("icl", 4));
        var data = TrainingData.Load(new TrainingDataOptions([nq, icl, nq, otherNq], TrainGroupSize: 3));

        Assert.Equal(["nq", "icl", "nq_1", "nq_2"], data.Datasets.Select(d => d.Name));
        Assert.Equal(["qa", "icl", "qa", "qa"], data.Datasets.Select(d => d.Task));
        Assert.Equal([(0, 3), (3, 4), (7, 3), (10, 2)], data.Datasets.Select(d => (d.Offset, d.Count)));
        Assert.Equal(12, data.Groups.Count);
        Assert.All(data.Datasets.Select((d, i) => (d, i)), x =>
            Assert.All(data.Groups.Skip(x.d.Offset).Take(x.d.Count), g => Assert.Equal(x.i, g.DatasetIndex)));
        // A file listed twice is two datasets with the same rows but their own random negatives.
        Assert.Equal(data.Groups.Skip(0).Take(3).Select(g => g.Query), data.Groups.Skip(7).Take(3).Select(g => g.Query));
        Assert.NotEqual(data.Groups.Skip(0).Take(3).SelectMany(g => g.Keys), data.Groups.Skip(7).Take(3).SelectMany(g => g.Keys));
    }

    [Fact]
    public void PreprocessingIsSeeded()
    {
        var file = Write("qa/train.jsonl", Rows("qa", 20, negatives: 10));
        TrainingData Load(long seed) => TrainingData.Load(new TrainingDataOptions([file], TrainGroupSize: 4, Seed: seed));
        var keys = (long seed) => Load(seed).Groups.SelectMany(g => g.Keys).ToArray();
        Assert.Equal(keys(42), keys(42));
        Assert.NotEqual(keys(42), keys(43));
    }

    [Fact]
    public void RecipeVersionPrefixesTheChineseInstruction()
    {
        var file = Write("icl/train.jsonl", ["""{"query":"今天星期几","pos":["今天是星期一"],"neg":["明天下雨"],"task":"icl"}"""]);
        var group = TrainingData.Load(new TrainingDataOptions([file], Version: "zh_llm_embedder", TrainGroupSize: 3)).Groups.Single();
        Assert.Equal("为这个句子生成表示以用于检索相关文章: 今天星期几", group.Query);
        Assert.Equal(["今天是星期一", "明天下雨", "明天下雨"], group.Keys);

        var plain = TrainingData.Load(new TrainingDataOptions([file], Version: "zh_llm_embedder", AddInstruction: false, TrainGroupSize: 2)).Groups.Single();
        Assert.Equal(("今天星期几", "今天是星期一"), (plain.Query, plain.Keys[0]));
    }

    [Fact]
    public void UseTrainConfigAppliesTheTableOfTheFilesTask()
    {
        var qa = Write("qa/msmarco/train.jsonl", Rows("qa", 3, withScores: true));
        var tool = Write("tool/toolbench/train.jsonl", Rows("tool", 3));
        var commandLine = new TaskTrainingConfig(SelectNegative: NegativeSelection.First, ContrastiveWeight: 0.2, DistillWeight: 0.7, TeacherTemperature: 0.5);
        var data = TrainingData.Load(new TrainingDataOptions([qa, tool], Version: "llm-embedder", UseTrainConfig: true, TrainGroupSize: 4, CommandLine: commandLine));

        Assert.Equal(commandLine with { SelectPositive = PositiveSelection.First, SelectNegative = NegativeSelection.Random, ContrastiveWeight = 0, StableDistill = true },
            data.Datasets[0].Config);
        Assert.Equal(commandLine with { SelectNegative = NegativeSelection.Random, DistillWeight = 0 }, data.Datasets[1].Config);
        Assert.Equal(new Instruction("Represent this query for retrieving relevant documents: ", "Represent this document for retrieval: "), data.Datasets[0].Instruction);
        // qa uses stable_distill: every group's negative scores are descending.
        Assert.All(data.Groups.Take(3), g => Assert.Equal(g.TeacherScores![1..].OrderDescending(), g.TeacherScores[1..]));

        var withoutTable = TrainingData.Load(new TrainingDataOptions([qa], Version: "llm-embedder", TrainGroupSize: 4, CommandLine: commandLine));
        Assert.Equal(commandLine, withoutTable.Datasets[0].Config);
        Assert.All(withoutTable.Groups, g => Assert.Equal(["pos", "neg", "neg", "neg"], g.Keys.Select(k => k[(k.IndexOf(": ") + 2)..][..3])));
    }

    [Fact]
    public void InstructionFileDefinesTheRecipeVersionWithItsTrainingTable()
    {
        var instructions = Path.Combine(_dir, "instructions.json");
        File.WriteAllText(instructions, """
            {"zh_llm_embedder": {"instruction": {"icl": {"query": "为这个句子生成表示以用于检索相关文章: ", "key": ""}},
                                 "training": {"icl": {"select_positive": "random", "contrastive_weight": 0, "stable_distill": true}}}}
            """);
        // With teacher scores: the table turns the contrastive loss off, so distillation is what trains.
        var file = Write("icl/train.jsonl", Rows("icl", 2, withScores: true));
        var data = TrainingData.Load(new TrainingDataOptions([file], Version: "zh_llm_embedder", InstructionFile: instructions, UseTrainConfig: true));
        Assert.Equal(new TaskTrainingConfig(PositiveSelection.Random, ContrastiveWeight: 0, StableDistill: true), data.Datasets[0].Config);
        Assert.StartsWith("为这个句子生成表示以用于检索相关文章: query", data.Groups[0].Query);
    }

    [Fact]
    public void TaskOrVersionProblemsPointAtTheFirstRow()
    {
        var file = Write("misc/train.jsonl", ["", """{"query":"q","pos":["p"],"neg":["n"],"task":"rerank"}"""]);
        Assert.Equal($"{file}:2: version \"llm-embedder\" has no instruction for task \"rerank\" (it has: chat, convsearch, icl, lrlm, qa, tool)",
            Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([file], Version: "llm-embedder"))).Message);
        Assert.Equal($"{file}:2: version \"zh_llm_embedder\" has no training config, so --use_train_config cannot be used with it (add a \"training\" table with --instruction_file)",
            Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([file], Version: "zh_llm_embedder", AddInstruction: false, UseTrainConfig: true))).Message);
        Assert.StartsWith("unknown instruction version \"llm_embedder\"",
            Assert.Throws<EmbedderException>(() => TrainingData.Load(new TrainingDataOptions([file], Version: "llm_embedder"))).Message);
    }

    [Fact]
    public void MaxSampleNumKeepsTheLastSurvivingSamplesLikeTheReference()
    {
        // Rows 1..6; row 5 has no negatives and is dropped before the limit applies.
        var lines = Rows("qa", 6).ToList();
        lines[4] = """{"query":"query4","pos":["pos4"],"neg":[],"task":"qa"}""";
        var file = Write("qa/train.jsonl", lines);
        var data = TrainingData.Load(new TrainingDataOptions([file], TrainGroupSize: 2, CommandLine: new TaskTrainingConfig(MaxSampleNum: 3)));
        Assert.Equal(["Represent this sentence for searching relevant passages: query2", "Represent this sentence for searching relevant passages: query3",
            "Represent this sentence for searching relevant passages: query5"], data.Groups.Select(g => g.Query));
        Assert.Equal((6, 3, 3), (data.Datasets[0].RowsRead, data.Datasets[0].DroppedRows, data.Datasets[0].Count));
    }

    /// <summary>The recipe in README.md: zh_llm_embedder, train_group_size 15, batch 16 on 2 processes, epoch mode.</summary>
    [Fact]
    public void RecipeFlagsGiveSameDatasetBatchesOfFullGroups()
    {
        var icl = Write("data/icl/train.jsonl", Rows("icl", 70, negatives: 20));
        var iclMore = Write("data/icl2/train.jsonl", Rows("icl", 40, negatives: 3));
        var data = TrainingData.Load(new TrainingDataOptions(["llm-embedder:icl/train.jsonl", "llm-embedder:icl2/train.jsonl"],
            DataRoot: Path.Combine(_dir, "data"), Version: "zh_llm_embedder", TrainGroupSize: 15));
        Assert.Equal([icl, iclMore], data.Datasets.Select(d => d.SourceFile));
        var ranks = Enumerable.Range(0, 2).Select(r => new BatchSampler(InBatchSameDataset.Epoch, data.Spans, 16, 2, r, 42)).ToArray();
        Assert.Equal(70 / 32 + 40 / 32, ranks[0].StepsPerEpoch);
        for (var step = 0; step < 2 * ranks[0].StepsPerEpoch; step++)
        {
            foreach (var sampler in ranks)
            {
                var batch = sampler.Next();
                var dataset = data.DatasetOf(batch);
                var groups = batch.RankIndices.Select(i => data.Groups[i]).ToList();
                Assert.Equal(16, groups.Count);
                Assert.All(groups, g => Assert.Equal(15, g.Keys.Length));
                Assert.All(groups, g => Assert.Equal(batch.DatasetIndex, g.DatasetIndex));
                Assert.All(groups, g => Assert.StartsWith("为这个句子生成表示以用于检索相关文章: query", g.Query));
                Assert.Equal("icl", dataset.Task);
            }
        }
    }

    [Fact]
    public void TeacherScoreFiltersDropRowsAndCountThem()
    {
        var file = Write("lrlm/train.jsonl", [
            """{"query":"a","pos":["p"],"neg":["n","m"],"teacher_scores":[0.5,0.45,0.42],"task":"lrlm"}""",
            """{"query":"b","pos":["p"],"neg":["n","m"],"teacher_scores":[0.9,0.1,0.3],"task":"lrlm"}""",
        ]);
        var data = TrainingData.Load(new TrainingDataOptions([file], Version: "llm-embedder", UseTrainConfig: true, TrainGroupSize: 3));
        // lrlm: margin 0.1 drops row a (0.5 − 0.42 = 0.08); select_positive teacher keeps p (0.9) for row b.
        var group = data.Groups.Single();
        Assert.Equal("Embed this text chunk for finding useful historical chunks: b", group.Query);
        Assert.Equal("Embed this historical text chunk for retrieval: p", group.Keys[0]);
        Assert.Equal(1, data.Datasets[0].DroppedRows);
        Assert.True(data.Datasets[0].HasTeacherScores);
    }
}
