using System.Text.Json.Nodes;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// The seed's command line in README.md (llm-embedder train in place of torchrun run_dense.py), on a
/// random-weight model of the bge-small-zh-v1.5 shape with the real Chinese vocab: runs to completion and produces
/// the layout of docs/REFERENCE.md §6; the saved encoder reloads and encodes.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class SeedRecipeEndToEndTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("seed-recipe");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void SeedCommandLineRunsAndProducesTheReferenceLayout()
    {
        var model = Path.Combine(dir, "bge-small-zh-shape");
        RandomModelFolder.Create(TestPaths.Fixture("bge-small-zh-v1.5", "config.json"), TestPaths.ChineseVocabDir, model, seed: 3);
        var dataRoot = Path.Combine(dir, "data");
        TrainingDataGenerator.Write(Path.Combine(dataRoot, "train.jsonl"), rows: 32, task: "icl", seed: 1, negatives: 20);
        var instructions = Path.Combine(dir, "instructions.json");
        File.WriteAllText(instructions, """{"zh_llm_embedder": {"instruction": {"icl": {"query": "为这个句子生成表示以用于检索相关文章: ", "key": ""}}}}""");
        var output = Path.Combine(dir, "data", "outputs", "icl");

        var result = CliProcess.Run([
            "train",
            "--output_dir", output, "--train_data", "llm-embedder:train.jsonl", "--save_steps", "1",
            "--query_encoder", model, "--version", "zh_llm_embedder",
            "--inbatch_same_dataset", "epoch", "--learning_rate", "2e-5", "--num_train_epochs", "2",
            "--train_group_size", "15", "--per_device_train_batch_size", "16", "--cos_temperature", "0.02",
            "--dtype", "fp32", "--report_to", "tensorboard", "--data_root", dataRoot,
            "--instruction_file", instructions, "--query_max_length", "32", "--key_max_length", "48", "--logging_steps", "1",
        ]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);

        // 32 rows / (16 x 1 process) = 2 steps per epoch, 2 epochs = 4 steps; checkpoints at 1, 2, 3, the final model in output_dir.
        foreach (var step in new[] { 1, 2, 3 })
            AssertModelLayout(Path.Combine(output, $"checkpoint-{step}"));
        AssertModelLayout(output);
        Assert.False(Directory.Exists(Path.Combine(output, "checkpoint-4")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(output, "runs"), "events.out.tfevents.*", SearchOption.AllDirectories));
        Assert.True(new FileInfo(Path.Combine(output, "loss.png")).Length > 1000);

        var args = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "args.json")))!;
        Assert.Equal(15, args["training_args"]!["train_group_size"]!.GetValue<int>());
        Assert.Equal("zh_llm_embedder", args["model_args"]!["version"]!.GetValue<string>());
        Assert.Equal(0.02, args["training_args"]!["cos_temperature"]!.GetValue<double>());

        using var encoder = SentenceEncoder.Load(Path.Combine(output, "encoder"));
        var embeddings = encoder.Encode(["今天星期几", "北京的历史很悠久"], EmbeddingRole.Query);
        Assert.Equal(2 * 512, embeddings.Length);
        Assert.All(embeddings, v => Assert.True(float.IsFinite(v)));

        // The weights moved: the fine-tuned encoder differs from the random start.
        using var start = SentenceEncoder.Load(model);
        Assert.NotEqual(start.Encode(["今天星期几"], EmbeddingRole.Query), encoder.Encode(["今天星期几"], EmbeddingRole.Query));
    }

    private static void AssertModelLayout(string folder)
    {
        Assert.True(File.Exists(Path.Combine(folder, "args.json")), $"{folder}/args.json");
        var encoder = Path.Combine(folder, "encoder");
        foreach (var file in new[] { "config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
            Assert.True(File.Exists(Path.Combine(encoder, file)), $"{encoder}/{file}");
        var header = LlmEmbedder.Checkpoints.Safetensors.ReadHeader(Path.Combine(encoder, "model.safetensors"));
        Assert.DoesNotContain(header.Keys, k => k.StartsWith("pooler.", StringComparison.Ordinal));
        Assert.Contains("encoder.layer.3.output.LayerNorm.weight", header.Keys);
    }
}
