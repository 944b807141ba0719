using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Training;

namespace LlmEmbedder.Tests.Scoring;

/// <summary>
/// `score` as a user runs it: teacher_scores equal the PyTorch reference's logits for (query, pos...) then
/// (query, neg...) (for chat rows, each history entry), every other field is kept, --sigmoid applies the sigmoid, and
/// the output trains with distillation alone (contrastive_weight 0), which the unscored file cannot.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class ScoreCliTests : IDisposable
{
    private const int MaxLength = 21;
    private readonly string dir = TestPaths.NewTempDir("score-cli");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TeacherScoresAreTheReferenceLogitsInPosThenNegOrderAndTrainWithDistillation()
    {
        var model = CrossEncoderReference.Create(dir);
        var train = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(train, rows: 8, task: "qa", seed: 5, negatives: 3, teacherScores: true);
        var scored = Path.Combine(dir, "qa", "scored.jsonl");

        var result = CliProcess.Run(["score", "--model", model, "--input_file", train, "--output_file", scored, "--max_length", $"{MaxLength}"]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("8 rows, 32 teacher scores (cross-encoder logits); 8 rows had teacher_scores, replaced", result.Stderr);
        var (logits, rows) = CompareWithReference(model, train, scored, keys: row => [.. Strings(row["pos"]), .. Strings(row["neg"])]);

        var sigmoidFile = Path.Combine(dir, "sigmoid.jsonl");
        var sigmoid = CliProcess.Run(["score", "--model", model, "--input_file", train, "--output_file", sigmoidFile, "--max_length", $"{MaxLength}", "--sigmoid"]);
        Assert.True(sigmoid.ExitCode == 0, sigmoid.Stderr);
        var sigmoidScores = File.ReadAllLines(sigmoidFile).SelectMany(line => Numbers(JsonNode.Parse(line)!["teacher_scores"])).ToArray();
        Assert.Equal(logits.Length, sigmoidScores.Length);
        for (int i = 0; i < logits.Length; i++) Assert.True(Math.Abs(sigmoidScores[i] - 1 / (1 + Math.Exp(-logits[i]))) <= 1e-6);

        // Distillation alone needs teacher scores: the scored file trains, the same rows without scores cannot.
        var unscored = Path.Combine(dir, "qa", "unscored.jsonl");
        File.WriteAllLines(unscored, rows.Select(r => { var copy = r.DeepClone().AsObject(); copy.Remove("teacher_scores"); return copy.ToJsonString(); }));
        var tiny = CliProcess.TinyChineseModel(dir);
        string[] Train(string data, string output) => ["train", "--query_encoder", tiny, "--train_data", data, "--output_dir", Path.Combine(dir, output),
            "--contrastive_weight", "0", "--distill_weight", "1", "--per_device_train_batch_size", "4", "--train_group_size", "3", "--max_steps", "2",
            "--learning_rate", "1e-3", "--warmup_ratio", "0", "--query_max_length", "24", "--key_max_length", "24", "--dtype", "fp32", "--logging_steps", "1"];
        var trained = CliProcess.Run(Train(scored, "distilled"));
        Assert.True(trained.ExitCode == 0, trained.Stdout + trained.Stderr);
        Assert.True(File.Exists(Path.Combine(dir, "distilled", "encoder", "model.safetensors")));
        var refused = CliProcess.Run(Train(unscored, "refused"));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("there are no teacher_scores", refused.Stderr);
    }

    [Fact]
    public void AnEmbeddingModelAsTeacherGivesTheCosineOfWhatEncodeWritesWithTheInstructions()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var train = Path.Combine(dir, "train.jsonl");
        TrainingDataGenerator.Write(train, rows: 4, task: "qa", seed: 9, negatives: 2);
        var scored = Path.Combine(dir, "scored.jsonl");
        string[] spec = ["--version", "llm-embedder", "--task", "qa", "--max_length", "16"];
        var result = CliProcess.Run(["score", "--model", model, "--input_file", train, "--output_file", scored, .. spec]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Contains("(cosine similarity of the embeddings)", result.Stderr);

        var rows = File.ReadAllLines(scored).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        string Encoded(string role, string[] texts)
        {
            var input = Path.Combine(dir, $"{role}.txt");
            File.WriteAllLines(input, texts);
            var output = Path.Combine(dir, $"{role}.npy");
            var encode = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, "--role", role, .. spec]);
            Assert.True(encode.ExitCode == 0, encode.Stderr);
            return output;
        }
        var queries = rows.Select(r => r["query"]!.GetValue<string>()).ToArray();
        var keys = rows.SelectMany(r => Strings(r["pos"]).Concat(Strings(r["neg"]))).ToArray();
        var queryVectors = LlmEmbedder.Checkpoints.Npy.ReadFloat32(Encoded("query", queries));
        var keyVectors = LlmEmbedder.Checkpoints.Npy.ReadFloat32(Encoded("key", keys));
        int dimension = queryVectors.Columns, next = 0;
        for (int r = 0; r < rows.Length; r++)
        {
            foreach (var score in Numbers(rows[r]["teacher_scores"]))
            {
                double cosine = 0;
                for (int d = 0; d < dimension; d++) cosine += (double)queryVectors.Values[r * dimension + d] * keyVectors.Values[next * dimension + d];
                Assert.True(Math.Abs(score - cosine) <= 1e-5, $"row {r}, key {next}: {score} vs {cosine}");
                next++;
            }
        }
        Assert.Equal(keys.Length, next);
        // The instructions matter: without them the scores differ.
        var plain = Path.Combine(dir, "plain.jsonl");
        Assert.Equal(0, CliProcess.Run(["score", "--model", model, "--input_file", train, "--output_file", plain, "--max_length", "16"]).ExitCode);
        Assert.NotEqual(File.ReadAllText(scored), File.ReadAllText(plain));
    }

    [Fact]
    public void MineWithACrossEncoderScorerJudgesTheMarginsByItsScores()
    {
        // The range covers the whole pool, so every pool text but the row's own positives is a candidate of every row,
        // whatever the embedder ranks; the cross-encoder alone decides what the margin drops.
        var crossEncoder = CrossEncoderReference.Create(dir);
        var embedder = CliProcess.TinyChineseModel(dir);
        var train = Path.Combine(dir, "train.jsonl");
        TrainingDataGenerator.Write(train, rows: 6, task: "qa", seed: 4, negatives: 3);
        var rows = File.ReadAllLines(train).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        var pool = rows.SelectMany(r => Strings(r["pos"]).Concat(Strings(r["neg"]))).Distinct().ToArray();
        var mined = Path.Combine(dir, "mined.jsonl");
        var mine = CliProcess.Run(["mine", "--model", embedder, "--input_file", train, "--output_file", mined, "--no_cache",
            "--range_for_sampling", $"0-{pool.Length}", "--negative_number", "2", "--relative_margin", "0.05", "--scorer", crossEncoder, "--scorer_sigmoid"]);
        Assert.True(mine.ExitCode == 0, mine.Stderr);

        // The reference scores: `score --sigmoid` (checked against PyTorch above) of each query against its positives and the whole pool.
        var everything = Path.Combine(dir, "everything.jsonl");
        File.WriteAllLines(everything, rows.Select(r => CrossEncoderReference.Serialize(new { query = r["query"]!.GetValue<string>(), pos = Strings(r["pos"]), neg = pool })));
        var scored = Path.Combine(dir, "everything-scored.jsonl");
        Assert.Equal(0, CliProcess.Run(["score", "--model", crossEncoder, "--input_file", everything, "--output_file", scored, "--sigmoid"]).ExitCode);
        int candidates = 0, removed = 0;
        var scoredRows = File.ReadAllLines(scored).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        for (int r = 0; r < rows.Length; r++)
        {
            var positives = Strings(rows[r]["pos"]);
            var scores = Numbers(scoredRows[r]["teacher_scores"]);
            double positive = scores[..positives.Length].Min();
            var dropped = new HashSet<string>();
            for (int i = 0; i < pool.Length; i++)
            {
                if (positives.Contains(pool[i])) continue;
                candidates++;
                if (scores[positives.Length + i] > positive * (1 - 0.05)) { removed++; dropped.Add(pool[i]); }
            }
            Assert.DoesNotContain(Strings(JsonNode.Parse(File.ReadAllLines(mined)[r])!["neg"]), dropped.Contains);
        }
        Assert.Contains($"margins (cross-encoder sigmoid(logit), against each row's lowest positive score): --relative_margin 0.05 removed {removed} of {candidates} candidates in range", mine.Stderr);
        Assert.True(removed > 0 && removed < candidates, $"{removed} of {candidates} removed: the case does not tell the rule apart");
    }

    [Fact]
    public void ChatRowsGetOneScorePerHistoryEntry()
    {
        var model = CrossEncoderReference.Create(dir);
        var chat = Path.Combine(dir, "chat.jsonl");
        File.WriteAllLines(chat, [
            CrossEncoderReference.Serialize(new { query = "熊猫吃什么", history = new[] { "熊猫喜欢吃竹子。", "长城很长。", "Who wrote the Analects?" }, task = "chat" }),
            CrossEncoderReference.Serialize(new { query = "长江有多长", history = new[] { "长江是中国最长的河流，流经很多省份，对农业和交通非常重要。" }, task = "chat" }),
        ]);
        var scored = Path.Combine(dir, "chat-scored.jsonl");
        var result = CliProcess.Run(["score", "--model", model, "--input_file", chat, "--output_file", scored, "--max_length", $"{MaxLength}"]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        CompareWithReference(model, chat, scored, keys: row => Strings(row["history"]));
    }

    [Fact]
    public void EmbedderOnlyFlagsAndBadRowsAreOneClearError()
    {
        var model = CrossEncoderReference.Create(dir);
        var input = Path.Combine(dir, "bad.jsonl");
        File.WriteAllLines(input, ["""{"query": "q", "pos": ["a"], "neg": ["b"]}""", """{"query": "q", "pos": "a", "neg": ["b"]}"""]);
        var output = Path.Combine(dir, "out.jsonl");
        var badRow = CliProcess.Run(["score", "--model", model, "--input_file", input, "--output_file", output]);
        Assert.Equal(1, badRow.ExitCode);
        Assert.StartsWith($"llm-embedder: error: {input}:2: \"pos\"", Assert.Single(badRow.StderrLines));
        var taskFlag = CliProcess.Run(["score", "--model", model, "--input_file", input, "--output_file", output, "--task", "qa"]);
        Assert.Equal(1, taskFlag.ExitCode);
        Assert.Equal("llm-embedder: error: --task applies to embedding models; " + model + " is a cross-encoder", Assert.Single(taskFlag.StderrLines));
        Assert.False(File.Exists(output));
    }

    /// <summary>Checks the scored file against the reference and the input; returns the reference logits in file order and the scored rows.</summary>
    private static (double[] Logits, JsonObject[] Rows) CompareWithReference(string model, string input, string scored, Func<JsonObject, string[]> keys)
    {
        var inputRows = File.ReadAllLines(input).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        var rows = File.ReadAllLines(scored).Select(line => JsonNode.Parse(line)!.AsObject()).ToArray();
        Assert.Equal(inputRows.Length, rows.Length);
        var pairs = inputRows.SelectMany(row => keys(row).Select(key => (row["query"]!.GetValue<string>(), key))).ToList();
        var reference = CrossEncoderReference.Score(model, pairs, MaxLength);
        var ours = rows.SelectMany(row => Numbers(row["teacher_scores"])).ToArray();
        Assert.Equal(pairs.Count, ours.Length);
        for (int i = 0; i < ours.Length; i++)
            Assert.True(Math.Abs(ours[i] - reference.Logits[i]) <= 1e-5, $"pair {i}: ours {ours[i]}, PyTorch {reference.Logits[i]}");
        for (int r = 0; r < rows.Length; r++)
        {
            Assert.Equal(keys(inputRows[r]).Length, rows[r]["teacher_scores"]!.AsArray().Count);
            var withoutScores = rows[r].DeepClone().AsObject();
            withoutScores.Remove("teacher_scores");
            var inputWithoutScores = inputRows[r].DeepClone().AsObject();
            inputWithoutScores.Remove("teacher_scores");
            Assert.True(JsonNode.DeepEquals(inputWithoutScores, withoutScores), $"row {r}: fields changed");
        }
        return (reference.Logits, rows);
    }

    private static string[] Strings(JsonNode? list) => list!.AsArray().Select(v => v!.GetValue<string>()).ToArray();

    private static double[] Numbers(JsonNode? list) => list!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
}
