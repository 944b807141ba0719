using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// eval --model A --compare B prints A, B and A − B (the sign of training's after − before when B is the start model),
/// each value the one in A's and B's metrics.json.
/// </summary>
public sealed class EvalCompareSignTests : IDisposable
{
    private static readonly string[] Passages =
    [
        "北京是中国的首都。", "上海是中国最大的城市。", "长江是中国最长的河流。", "黄河是中华文明的摇篮。", "熊猫生活在四川的竹林里。",
        "茶起源于中国。", "长城有两千多年的历史。", "春节是中国最重要的节日。", "饺子是北方的传统食物。", "西湖在杭州。",
    ];

    private readonly string dir = TestPaths.NewTempDir("compare-sign");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void ChangeColumnIsModelMinusBaseline()
    {
        var model = CliProcess.TinyChineseModel(dir, seed: 1, name: "model");
        var baseline = CliProcess.TinyChineseModel(dir, seed: 2, name: "baseline");
        var corpus = Path.Combine(dir, "corpus.jsonl");
        File.WriteAllLines(corpus, Passages.Select(p => System.Text.Json.JsonSerializer.Serialize(new { text = p })));
        var evalData = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(evalData, Passages.Select((p, i) => System.Text.Json.JsonSerializer.Serialize(new { query = p[..3], pos_index = new[] { i } })));
        var output = Path.Combine(dir, "out");

        var result = CliProcess.Run(["eval", "--model", model, "--compare", baseline, "--eval_data", evalData, "--corpus", corpus,
            "--key_template", "{text}", "--no_cache", "--cutoffs", "1", "3", "5", "--hits", "10", "--output_dir", output]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        var lines = result.Stdout.Split('\n');
        var header = Cells(Assert.Single(lines, l => l.Contains("metric")));
        Assert.Equal(["metric", "model: model", "baseline: baseline", "model − baseline"], header);
        var modelMetrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!;
        var baselineMetrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "compare", "metrics.json")))!;
        var changes = new List<double>();
        foreach (var name in new[] { "mrr@1", "mrr@3", "recall@5", "ndcg@5" })
        {
            var row = Cells(Assert.Single(lines, l => Cells(l) is [var first, ..] && first == name));
            double a = modelMetrics[name]!.GetValue<double>(), b = baselineMetrics[name]!.GetValue<double>();
            Assert.Equal(a.ToString("F4"), row[1]);
            Assert.Equal(b.ToString("F4"), row[2]);
            Assert.Equal((a - b).ToString("+0.0000;-0.0000;0.0000"), row[3]);
            changes.Add(a - b);
        }
        Assert.Contains(changes, c => Math.Abs(c) > 1e-4);   // the two random models do rank differently, so the sign is tested
    }

    private static string[] Cells(string line) =>
        line.Split('│', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(c => c.Length > 0).ToArray();
}
