using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// With --mini_batch_size the peak memory of a training step follows the chunk, not the batch: the peak RSS that
/// <c>llm-embedder train</c> reports barely moves from 16 to 64 queries per device, while the same step without caching
/// grows by the whole batch's activations. Keys are 128 tokens, so activations dominate the runtime's own memory.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed partial class GradientCacheMemoryTests : IDisposable
{
    private readonly ITestOutputHelper output;
    private readonly string dir = TestPaths.NewTempDir("gradcache-memory");

    public GradientCacheMemoryTests(ITestOutputHelper output) => this.output = output;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void PeakMemoryFollowsTheChunkNotTheBatch()
    {
        // 2 layers, hidden 256: at 64 × 8 keys of 128 tokens the activations are about 3 GiB, the weights 25 MiB.
        var configPath = Path.Combine(dir, "config.json");
        File.WriteAllText(configPath, """
            {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 21128, "hidden_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 1024, "max_position_embeddings": 512}
            """);
        var model = Path.Combine(dir, "model");
        RandomModelFolder.Create(configPath, TestPaths.ChineseVocabDir, model, seed: 1);
        var data = Path.Combine(dir, "qa", "train.jsonl");
        WriteLongRows(data, rows: 64);

        double PeakGiB(string name, int batch, params string[] extra)
        {
            var result = CliProcess.Run([
                "train", "--query_encoder", model, "--train_data", data, "--output_dir", Path.Combine(dir, name), "--data_root", dir,
                "--per_device_train_batch_size", batch.ToString(CultureInfo.InvariantCulture), "--train_group_size", "8",
                "--max_steps", "1", "--save_steps", "0", "--query_max_length", "32", "--key_max_length", "128", "--dtype", "fp32", .. extra,
            ]);
            Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
            var peak = PeakLine().Match(result.Stdout);
            Assert.True(peak.Success, result.Stdout);
            output.WriteLine($"{name}: {peak.Value}");
            return double.Parse(peak.Groups[1].Value, CultureInfo.InvariantCulture);
        }

        double cached16 = PeakGiB("cached-16", 16, "--mini_batch_size", "8");
        double cached64 = PeakGiB("cached-64", 64, "--mini_batch_size", "8");
        double plain64 = PeakGiB("plain-64", 64);

        Assert.True(cached64 < 1.2 * cached16, $"with caching the peak grew from {cached16} to {cached64} GiB");
        // Without caching the same batch holds every text's activations: the measurement can see them.
        Assert.True(plain64 > 1.5 * cached64, $"without caching the peak is {plain64} GiB, with it {cached64} GiB");
    }

    [GeneratedRegex(@"peak memory of the training steps: ([0-9.]+) GiB")]
    private static partial Regex PeakLine();

    /// <summary>Rows whose query is about 30 characters and whose passages are over 128 (one token per character).</summary>
    private static void WriteLongRows(string path, int rows)
    {
        var random = new Random(5);
        const string characters = "北京上海长江熊猫茶叶长城火锅丝绸围棋京剧西湖黄河的历史很悠久每年吸引游客是中国象征之一有许多趣故事";
        string Text(int length) => new(Enumerable.Range(0, length).Select(_ => characters[random.Next(characters.Length)]).ToArray());
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, Enumerable.Range(0, rows).Select(_ => JsonSerializer.Serialize(new
        {
            query = Text(30), pos = new[] { Text(150) }, neg = Enumerable.Range(0, 7).Select(_ => Text(150)).ToArray(), task = "qa",
        })));
    }
}
