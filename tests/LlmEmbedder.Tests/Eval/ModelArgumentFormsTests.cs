using LlmEmbedder.Tests.Checkpoints.Hub;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// --model of eval and mine in its three forms: a plain encoder folder with the reference's dense_pooler.bin, its
/// sentence-transformers export (modules.json → Pooling, Dense, Normalize), and that export as a hub id served by a
/// fake hub. All three must rank the corpus identically, and differently from the encoder without its Dense layer.
/// </summary>
public sealed class ModelArgumentFormsTests : IDisposable
{
    private static readonly string[] Passages =
    [
        "北京是中国的首都。", "上海是中国最大的城市。", "长江是中国最长的河流。", "黄河是中华文明的摇篮。", "熊猫生活在四川的竹林里。",
        "茶起源于中国。", "长城有两千多年的历史。", "春节是中国最重要的节日。", "饺子是北方的传统食物。", "西湖在杭州。",
    ];

    private readonly string dir = TestPaths.NewTempDir("model-forms");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void PlainFolderWithDensePoolerItsExportAndTheExportFromTheHubRankAlike()
    {
        var encoder = CliProcess.TinyChineseModel(dir);
        ReferencePython.Run("dense_pooler_reference.py", "write", Path.Combine(encoder, "dense_pooler.bin"), "32", "3");
        var export = Path.Combine(dir, "st");
        var exported = CliProcess.Run(["export", "--encoder", encoder, "--output_dir", export]);
        Assert.True(exported.ExitCode == 0, exported.Stderr);

        using var hub = new FakeHub();
        var files = Directory.GetFiles(export, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(export, f).Replace('\\', '/'), File.ReadAllBytes);
        hub.AddRepo("org/tiny-st", files, ["model.safetensors", "2_Dense/model.safetensors"]);
        var environment = new Dictionary<string, string> { ["HF_ENDPOINT"] = hub.Endpoint, ["HF_HOME"] = Path.Combine(dir, "hf-home") };

        var corpus = Path.Combine(dir, "corpus.jsonl");
        File.WriteAllLines(corpus, Passages.Select(p => System.Text.Json.JsonSerializer.Serialize(new { text = p })));
        var evalData = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(evalData, Passages.Select((p, i) => System.Text.Json.JsonSerializer.Serialize(new { query = p[..3], pos_index = new[] { i } })));

        string Results(string model, string name)
        {
            var output = Path.Combine(dir, name);
            var result = CliProcess.Run(["eval", "--model", model, "--eval_data", evalData, "--corpus", corpus, "--key_template", "{text}",
                "--no_cache", "--cutoffs", "1", "5", "--hits", "10", "--output_dir", output], environment: environment);
            Assert.True(result.ExitCode == 0, result.Stderr);
            return File.ReadAllText(Path.Combine(output, "results.jsonl"));
        }

        var fromEncoder = Results(encoder, "encoder");
        Assert.Equal(fromEncoder, Results(export, "export"));
        Assert.Equal(fromEncoder, Results("org/tiny-st", "hub"));
        Assert.True(File.Exists(Path.Combine(dir, "hf-home", "hub", "models--org--tiny-st", "refs", "main")));

        File.Delete(Path.Combine(encoder, "dense_pooler.bin"));
        Assert.NotEqual(fromEncoder, Results(encoder, "without-dense"));

        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(train, Passages.Take(3).Select(p => System.Text.Json.JsonSerializer.Serialize(new { query = p[..3], pos = new[] { p } })));
        var mined = CliProcess.Run(["mine", "--model", "org/tiny-st", "--input_file", train, "--candidate_pool", corpus, "--output_file",
            Path.Combine(dir, "mined.jsonl"), "--range_for_sampling", "1-6", "--negative_number", "3", "--no_cache"], environment: environment);
        Assert.True(mined.ExitCode == 0, mined.Stderr);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(dir, "mined.jsonl")).Length);
    }
}
