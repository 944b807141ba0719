using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// The first thing a new user does after `llm-embedder train`: evaluate the model it wrote. With only --eval_data and
/// --corpus, `eval` of the run folder and of its encoder/ must print what training's own "after" evaluation printed
/// (the encoder spec carries the mean pooling, the lengths and the zh_llm_embedder instructions). Before the spec,
/// eval fell back to CLS pooling and no instruction and printed mrr@1 0.28 instead of 0.65. The merge with the start
/// model that the default runs after training measures the same numbers.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class EmbeddedDefaultEvalMatchesTrainingTests(TrainedEmbeddedDefault embeddedDefault) : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("embedded-default-eval");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void EvalOfTheRunFolderAndOfItsEncoderEqualsTrainingsAfterMetrics()
    {
        var run = embeddedDefault.RunFolder;
        var after = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!["after"]!.AsObject();
        Assert.True(after["mrr@1"]!.GetValue<double>() > 0.3, "the embedded default should have learned something");

        var samples = Path.Combine(TestPaths.RepoRoot, "samples", "eval");
        foreach (var model in new[] { run, Path.Combine(run, "encoder") })
        {
            var output = Path.Combine(dir, "eval-" + Path.GetFileName(model));
            var eval = CliProcess.Run(["eval", "--model", model, "--eval_data", Path.Combine(samples, "queries.jsonl"),
                "--corpus", Path.Combine(samples, "corpus.jsonl"), "--no_cache", "--output_dir", output], workingDirectory: dir);
            Assert.True(eval.ExitCode == 0, eval.Stderr);
            Assert.DoesNotContain("note:", eval.Stderr);
            var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")))!.AsObject();
            foreach (var (name, value) in after)
            {
                Assert.True(metrics.ContainsKey(name), $"eval of {model} has no {name}");
                double expected = value!.GetValue<double>(), actual = metrics[name]!.GetValue<double>();
                Assert.True(Math.Abs(expected - actual) <= 1e-6, $"{model}: {name} {actual} vs training's after {expected}");
            }
        }

        // The merge that follows: the fine-tuned model alone measures training's "after" on the sample set, the start
        // model alone its "before", and the pick is at least as good as either on the mean of the two sets.
        var search = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "merged", "merge.json")))!["search"]!;
        var candidates = search["candidates"]!.AsArray().Select(c => c!).ToList();
        double DomainMrr(JsonNode candidate) => (double)candidate["metrics"]!.AsObject().First().Value!["mrr@10"]!;
        var before = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "metrics.json")))!["before"]!;
        Assert.Equal((double)after["mrr@10"]!, DomainMrr(candidates.Single(c => (double)c["weights"]![0]! == 1)), 6);
        Assert.Equal((double)before["mrr@10"]!, DomainMrr(candidates.Single(c => (double)c["weights"]![1]! == 1)), 6);
        var chosen = candidates[(int)search["chosen"]!];
        Assert.All(candidates, c => Assert.True((double)chosen["mean"]! >= (double)c["mean"]!));
        Assert.True(File.Exists(Path.Combine(run, "merged", "model.safetensors")));
    }
}
