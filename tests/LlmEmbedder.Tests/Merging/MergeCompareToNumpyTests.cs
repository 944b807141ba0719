using System.Text.Json.Nodes;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Merging;

/// <summary>
/// `merge` against LM-Cocktail's merge recomputed with numpy in float32 (tests/reference/merge_reference.py), the
/// inputs it must refuse, and `--weights auto` against `eval` of the models it merges and of the model it writes.
/// </summary>
public sealed class MergeCompareToNumpyTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("merge");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void FixedWeightsGiveTheFloat32WeightedAverageOfEveryTensorExactly()
    {
        string[] models = [Model("a", seed: 1), Model("b", seed: 2), Model("c", seed: 3)];
        foreach (var (model, seed) in models.Select((m, i) => (m, i)))
        {
            using var dense = DenseLayer.CreateDensePooler(32, new TorchSharp.torch.Generator((ulong)(seed + 10)));
            dense.SaveDensePooler(Path.Combine(model, SentenceEncoder.DensePoolerFile));
        }
        string[] weights = ["0.2", "0.3", "0.5"];
        var merged = Path.Combine(dir, "merged");

        var result = CliProcess.Run(["merge", "--models", .. models, "--weights", .. weights, "--output_dir", merged]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        var report = JsonNode.Parse(ReferencePython.Run("merge_reference.py",
            [merged, .. weights.Zip(models).SelectMany(p => new[] { p.First, p.Second })]))!;
        Assert.Empty(report["missing"]!.AsArray());
        Assert.Empty(report["extra"]!.AsArray());
        var tensors = report["tensors"]!.AsObject();
        output.WriteLine($"{tensors.Count} tensors; largest difference {tensors.Max(t => (double)t.Value!["max_abs_diff"]!):E2}");
        Assert.Contains("dense_pooler.weight", tensors.Select(t => t.Key));
        Assert.Contains("encoder.layer.0.attention.self.query.weight", tensors.Select(t => t.Key));
        Assert.All(tensors, t => Assert.True((int)t.Value!["unequal"]! == 0, $"{t.Key}: {t.Value["unequal"]} elements differ by up to {t.Value["max_abs_diff"]}"));

        var record = JsonNode.Parse(File.ReadAllText(Path.Combine(merged, "merge.json")))!;
        Assert.Equal([0.2, 0.3, 0.5], record["weights"]!.AsArray().Select(w => (double)w!));
        Assert.Equal(models.Select(Path.GetFullPath), record["models"]!.AsArray().Select(m => (string)m!));
        // The merged folder is a model every command takes: the tokenizer and the first model's spec came along.
        Assert.True(File.Exists(Path.Combine(merged, "vocab.txt")));
        Assert.True(File.Exists(Path.Combine(merged, "encoder_spec.json")));
        Assert.True(File.Exists(Path.Combine(merged, "modules.json")));
    }

    [Fact]
    public void ModelsOfAnotherShapeOrVocabularyAndBadWeightsAreRefusedWithOneLine()
    {
        var a = Model("a", seed: 1);
        var twoLayers = CliProcess.TinyChineseModel(dir, layers: 2, seed: 2, name: "two-layers");
        var otherVocab = Model("other-vocab", seed: 3);
        // Its tokenizer read from vocab.txt alone, with two tokens swapped.
        File.Delete(Path.Combine(otherVocab, "tokenizer.json"));
        var vocab = File.ReadAllLines(Path.Combine(otherVocab, "vocab.txt"));
        (vocab[100], vocab[101]) = (vocab[101], vocab[100]);
        File.WriteAllLines(Path.Combine(otherVocab, "vocab.txt"), vocab);
        var merged = Path.Combine(dir, "merged");

        AssertRefused(["--models", a, twoLayers, "--weights", "0.5", "0.5"], $"{twoLayers}: has a parameter 'encoder.layer.1.");
        AssertRefused(["--models", a, otherVocab, "--weights", "0.5", "0.5"], $"{otherVocab}: token 100 is \"{vocab[100]}\" but \"{vocab[101]}\"");
        AssertRefused(["--models", a, otherVocab, "--weights", "0.5", "0.6"], "--weights must sum to 1 (a weighted average), got 1.1");
        AssertRefused(["--models", a, otherVocab, "--weights", "1"], "--weights has 1 values for 2 models");
        AssertRefused(["--models", a, otherVocab, "--weights", "1.5", "-0.5"], "--weights must be finite and >= 0, got -0.5");
        AssertRefused(["--models", a, otherVocab, "--weights", "auto"], "--weights auto needs --eval_data");
        AssertRefused(["--models", a, otherVocab, "--weights", "auto", "--eval_data", "x", "--weight_step", "0.3"], "--weight_step 0.3: 1 / step must be a whole number");
        Assert.False(Directory.Exists(merged));

        void AssertRefused(string[] args, string message)
        {
            var result = CliProcess.Run(["merge", .. args, "--output_dir", merged]);
            Assert.Equal(1, result.ExitCode);
            var line = Assert.Single(result.StderrLines);
            Assert.StartsWith("llm-embedder: error: ", line);
            Assert.Contains(message, line);
        }
    }

    /// <summary>
    /// The search measures each input model as `eval` does (the first model's spec), keeps the best mean, which is
    /// therefore at least each input's, and writes the model it measured: `eval` of the output gives its numbers.
    /// </summary>
    [Fact]
    public void AutoWeightsPickTheBestMeanOverTwoSetsAndSaveTheModelTheyMeasured()
    {
        var a = Model("a", seed: 1);
        var b = Model("b", seed: 2);
        var samples = Path.Combine(TestPaths.RepoRoot, "samples");
        string[] evalData = [Path.Combine(samples, "eval", "queries.jsonl"), Path.Combine(samples, "general", "queries.jsonl")];
        string[] corpora = [Path.Combine(samples, "eval", "corpus.jsonl"), Path.Combine(samples, "general", "corpus.jsonl")];
        var merged = Path.Combine(dir, "merged");

        var result = CliProcess.Run(["merge", "--models", a, b, "--weights", "auto", "--weight_step", "0.25", "--eval_data", .. evalData,
            "--corpus", .. corpora, "--output_dir", merged, "--cutoffs", "1", "10"]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        output.WriteLine(result.Stderr);
        var search = JsonNode.Parse(File.ReadAllText(Path.Combine(merged, "merge.json")))!["search"]!;
        var candidates = search["candidates"]!.AsArray();
        Assert.Equal([1.0, 0.75, 0.5, 0.25, 0.0], candidates.Select(c => (double)c!["weights"]![0]!));
        double Mean(JsonNode candidate) => (double)candidate["mean"]!;
        double Metric(JsonNode candidate, int set) => (double)candidate["metrics"]!.AsObject().ElementAt(set).Value!["mrr@10"]!;
        var chosen = candidates[(int)search["chosen"]!]!;
        Assert.Equal(candidates.Max(c => Mean(c!)), Mean(chosen));
        Assert.True(Mean(chosen) >= Mean(candidates[0]!) && Mean(chosen) >= Mean(candidates[^1]!));
        foreach (var candidate in candidates) Assert.Equal((Metric(candidate!, 0) + Metric(candidate!, 1)) / 2, Mean(candidate!), 12);

        for (int set = 0; set < 2; set++)
        {
            // Model 1 alone is model 1; the chosen weights are what merge wrote.
            Assert.Equal(Eval(a, set), Metric(candidates[0]!, set), 12);
            Assert.Equal(Eval(merged, set), Metric(chosen, set), 12);
        }

        double Eval(string model, int set)
        {
            var outputDir = Path.Combine(dir, $"eval-{Path.GetFileName(model)}-{set}");
            var run = CliProcess.Run(["eval", "--model", model, "--eval_data", evalData[set], "--corpus", corpora[set], "--no_cache",
                "--cutoffs", "1", "10", "--output_dir", outputDir]);
            Assert.True(run.ExitCode == 0, run.Stderr);
            return (double)JsonNode.Parse(File.ReadAllText(Path.Combine(outputDir, "metrics.json")))!["mrr@10"]!;
        }
    }

    private string Model(string name, int seed) => CliProcess.TinyChineseModel(dir, seed: seed, name: name);
}
