using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// llm-embedder train --gradient_checkpointing against the same run without it: recomputing the layers in backward
/// (dropout on, masks replayed) must not change what the model learns, so the loss sequences agree.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class GradientCheckpointingTrainingTests : IDisposable
{
    private const int MaxSteps = 6;
    private readonly string dir = TestPaths.NewTempDir("gradckpt");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void CheckpointedRunRepeatsTheLossSequenceOfTheStoredActivationRun()
    {
        var model = CliProcess.TinyChineseModel(dir, layers: 2, dropout: 0.1, seed: 2);
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 48, task: "qa", seed: 4);

        IReadOnlyList<LossPoint> Train(string name, params string[] extra)
        {
            var output = Path.Combine(dir, name);
            var result = CliProcess.Run([
                "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
                "--max_steps", MaxSteps.ToString(), "--save_steps", "0", "--per_device_train_batch_size", "4", "--train_group_size", "4",
                "--learning_rate", "1e-3", "--seed", "3", "--query_max_length", "16", "--key_max_length", "24",
                "--dtype", "fp32", "--select_negative", "random", .. extra,
            ]);
            Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
            // The flag reached the trainer (equal losses alone would also follow from a flag that does nothing).
            Assert.Equal(extra.Contains("--gradient_checkpointing"), result.Stdout.Contains("with gradient checkpointing"));
            return TrainerState.Load(Path.Combine(output, CheckpointFolders.TrainerStateFile)).LossHistory;
        }

        var stored = Train("stored");
        var recomputed = Train("recomputed", "--gradient_checkpointing");

        Assert.Equal(MaxSteps, stored.Count);
        Assert.Equal(stored.Select(p => p.Step), recomputed.Select(p => p.Step));
        for (int i = 0; i < stored.Count; i++)
            Assert.True(Math.Abs(stored[i].Loss - recomputed[i].Loss) <= 1e-5 * Math.Max(1.0, Math.Abs(stored[i].Loss)),
                $"step {stored[i].Step}: loss {stored[i].Loss} without checkpointing vs {recomputed[i].Loss} with");
        // The model learns (lr 1e-3), so equal sequences mean equal updates at every step, not one repeated value.
        Assert.True(stored.Select(p => p.Loss).Distinct().Count() == MaxSteps);
    }
}
