using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Training;
using LlmEmbedder.Training.Checkpointing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Distributed;

/// <summary>
/// <c>mpirun -np 2 llm-embedder train --mini_batch_size 4</c> against the same two ranks without it, with
/// negative_cross_device (each rank's loss over both ranks' embeddings) and distillation (teacher scores, contrastive
/// 0.2 + KL 1.0): the same loss and gradient norm at every step, and the same weights after three steps.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class MpiGradientCacheTests : IDisposable
{
    private const int Steps = 3;
    private const double LearningRate = 1e-3;
    private readonly ITestOutputHelper output;
    private readonly string dir = TestPaths.NewTempDir("mpi-gradcache");

    public MpiGradientCacheTests(ITestOutputHelper output) => this.output = output;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TwoRanksWithGradientCachingTrainLikeTwoRanksWithout()
    {
        // No dropout: the plain step draws its masks for the whole batch at once, which no chunked forward can repeat
        // (GradientCacheEquivalenceTests covers the masks in one process).
        var model = CliProcess.TinyChineseModel(dir, layers: 2, dropout: 0.0, name: "tiny-model-no-dropout");
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 128, task: "qa", seed: 21, teacherScores: true);

        (IReadOnlyList<LossPoint> Losses, string Encoder) Train(string name, params string[] extra)
        {
            var outputDir = Path.Combine(dir, name);
            var (run, _) = MpiRun.Run(2, [
                "train", "--query_encoder", model, "--train_data", data, "--output_dir", outputDir, "--data_root", dir,
                "--negative_cross_device", "true", "--per_device_train_batch_size", "16", "--train_group_size", "8",
                "--max_steps", Steps.ToString(), "--save_steps", "0", "--logging_steps", "1", "--learning_rate", "1e-3",
                "--warmup_ratio", "0", "--seed", "3", "--pooling_method", "mean", "--query_max_length", "24", "--key_max_length", "48",
                "--dtype", "fp32", .. extra,
            ]);
            Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
            Assert.Equal(extra.Length > 0, run.Stdout.Contains("gradient caching in chunks of 4 texts"));
            Assert.Contains("global batch 32 (2 processes x 16) x group 8", run.Stdout);
            return (TrainerState.Load(Path.Combine(outputDir, CheckpointFolders.TrainerStateFile)).LossHistory,
                Path.Combine(outputDir, ModelFolder.TiedEncoderFolder));
        }

        var plain = Train("plain");
        var cached = Train("cached", "--mini_batch_size", "4");

        Assert.Equal(Steps, plain.Losses.Count);
        for (int i = 0; i < Steps; i++)
        {
            var (expected, actual) = (plain.Losses[i], cached.Losses[i]);
            output.WriteLine($"step {expected.Step}: loss {expected.Loss:R} / {actual.Loss:R}, grad norm {expected.GradNorm:R} / {actual.GradNorm:R}");
            Assert.True(Math.Abs(expected.Loss - actual.Loss) <= 1e-5 * Math.Max(1, Math.Abs(expected.Loss)), $"step {expected.Step}: loss {expected.Loss:R} vs {actual.Loss:R}");
            Assert.True(Math.Abs(expected.GradNorm!.Value - actual.GradNorm!.Value) <= 1e-5 * expected.GradNorm.Value,
                $"step {expected.Step}: grad norm {expected.GradNorm:R} vs {actual.GradNorm:R}");
        }
        // The model learns (equal losses after step 1 mean equal updates, not one repeated value).
        Assert.Equal(Steps, plain.Losses.Select(p => p.Loss).Distinct().Count());

        // Each AdamW step moves an element by up to about the learning rate; float noise moves it by far less.
        using var scope = NewDisposeScope();
        var plainWeights = WeightFiles.Load(plain.Encoder);
        var cachedWeights = WeightFiles.Load(cached.Encoder);
        var start = WeightFiles.Load(model);
        Assert.Equal(plainWeights.Keys.Order(), cachedWeights.Keys.Order());
        double largest = plainWeights.Max(p => (p.Value - cachedWeights[p.Key]).abs().max().item<float>());
        double moved = plainWeights.Max(p => (p.Value - start[p.Key]).abs().max().item<float>());
        output.WriteLine($"largest weight difference {largest:E2}; largest move {moved:E2}");
        Assert.True(largest <= 1e-2 * LearningRate, $"a weight differs by {largest:E2} after {Steps} steps");
        Assert.True(moved > 0.5 * LearningRate, $"the weights moved by at most {moved:E2}");
    }
}
