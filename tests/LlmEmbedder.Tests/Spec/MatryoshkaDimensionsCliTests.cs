using System.Text.Json.Nodes;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Spec;

/// <summary>
/// `train --matryoshka_dims` records the sizes in the encoder spec (and checks them against the model); `encode
/// --dimensions N` writes the first N dimensions of each row, normalised again for cosine models, and `eval
/// --dimensions N` searches with those rows. Compared with the full vectors `encode` writes, truncated by hand here.
/// </summary>
public sealed class MatryoshkaDimensionsCliTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("matryoshka-cli");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TrainingRecordsTheDimsAndEncodeKeepsTheFirstNDimensionsRenormalised()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var run = TinyRuns.Train(dir, model, "run", twoTasks: false, steps: 2, "--matryoshka_dims", "8", "32", "16", "--matryoshka_weights", "1", "2", "0.5");

        var spec = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "encoder", EncoderSpec.FileName)))!;
        Assert.Equal([32, 16, 8], spec["matryoshka_dims"]!.AsArray().Select(d => (int)d!));
        var args = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "args.json")))!["training_args"]!;
        Assert.Equal([8, 32, 16], args["matryoshka_dims"]!.AsArray().Select(d => (int)d!));

        var full = TinyRuns.Encode(dir, run, "query", null).Vectors;
        var cut = TinyRuns.Encode(dir, run, "query", null, "--dimensions", "8");
        Assert.Contains("x 8 (of 32) float32", cut.Stderr);
        int rows = TinyRuns.Texts.Length;
        Assert.Equal(rows * 8, cut.Vectors.Length);
        for (int row = 0; row < rows; row++)
        {
            var prefix = full.AsSpan(row * 32, 8).ToArray();
            double norm = Math.Sqrt(prefix.Sum(v => (double)v * v));
            for (int d = 0; d < 8; d++) Assert.Equal(prefix[d] / norm, cut.Vectors[row * 8 + d], 6);
        }
        Assert.Equal(full, TinyRuns.Encode(dir, run, "query", null, "--dimensions", "32").Vectors);
    }

    [Fact]
    public void DimsLargerThanTheEmbeddingsAreRefusedBeforeTraining()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var output = Path.Combine(dir, "too-large");
        var result = CliProcess.Run(["train", "--query_encoder", model, "--train_data", .. TinyRuns.TrainingFiles(dir, twoTasks: false), "--data_root", dir,
            "--output_dir", output, "--max_steps", "1", "--matryoshka_dims", "64", "16"]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("llm-embedder: error: --matryoshka_dims 64: the model's embeddings have 32 dimensions", result.Stderr);
        Assert.False(Directory.Exists(output));

        var mismatched = CliProcess.Run(["train", "--query_encoder", model, "--train_data", "x.jsonl", "--output_dir", output,
            "--matryoshka_dims", "16", "8", "--matryoshka_weights", "1"]);
        Assert.Equal(1, mismatched.ExitCode);
        Assert.Contains("--matryoshka_weights has 1 values for 2 --matryoshka_dims", Assert.Single(mismatched.StderrLines));
    }

    [Fact]
    public void EvalWithDimensionsSearchesWithTheCutVectorsAndRejectsMoreThanTheModelHas()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var samples = Path.Combine(TestPaths.RepoRoot, "samples", "eval");
        string[] evalArgs = ["eval", "--model", model, "--eval_data", Path.Combine(samples, "queries.jsonl"), "--corpus", Path.Combine(samples, "corpus.jsonl"),
            "--cache_dir", Path.Combine(dir, "cache")];

        var whole = CliProcess.Run([.. evalArgs, "--output_dir", Path.Combine(dir, "whole")]);
        var all = CliProcess.Run([.. evalArgs, "--dimensions", "32", "--output_dir", Path.Combine(dir, "all")]);
        var cut = CliProcess.Run([.. evalArgs, "--dimensions", "4", "--output_dir", Path.Combine(dir, "cut")]);
        var tooMany = CliProcess.Run([.. evalArgs, "--dimensions", "33"]);

        Assert.True(whole.ExitCode == 0 && all.ExitCode == 0 && cut.ExitCode == 0, whole.Stderr + all.Stderr + cut.Stderr);
        Assert.Contains("dimension 4;", cut.Stderr);
        Assert.Contains("corpus embeddings from cache", cut.Stderr);
        string Metrics(string name) => File.ReadAllText(Path.Combine(dir, name, "metrics.json"));
        Assert.Equal(Metrics("whole"), Metrics("all"));
        Assert.NotEqual(Metrics("whole"), Metrics("cut"));
        Assert.Equal(1, tooMany.ExitCode);
        Assert.Contains("llm-embedder: error: --dimensions 33: must be between 1 and the model's 32", tooMany.Stderr);
    }
}
