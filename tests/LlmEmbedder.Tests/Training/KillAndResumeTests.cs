using System.Diagnostics;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// A run killed with SIGKILL and resumed from "latest" continues with the same loss sequence as an uninterrupted
/// run with the same seed (dropout on), and partial checkpoints are never picked.
/// </summary>
/// <remarks>
/// All three processes get the same thread settings: libtorch picks its default thread count from the CPU affinity at
/// start-up, and 1 thread instead of 2 changes these losses from step 5 on, by up to 1.4e-5. With the threads fixed,
/// a resumed run repeats the uninterrupted one bit for bit (60 resumes from checkpoint 5, 6 from later ones).
/// </remarks>
[Collection(HeavyTests.Name)]
public sealed class KillAndResumeTests : IDisposable
{
    private const int MaxSteps = 40;
    private readonly string dir = TestPaths.NewTempDir("resume");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    /// <summary>A fixed thread count, not adjusted at run time (oneMKL's conditions for run-to-run reproducible results).</summary>
    private static readonly Dictionary<string, string> SameThreads = new()
    {
        ["OMP_NUM_THREADS"] = "2", ["MKL_NUM_THREADS"] = "2", ["MKL_DYNAMIC"] = "FALSE", ["OMP_DYNAMIC"] = "FALSE",
    };

    private string[] TrainArgs(string model, string data, string output) =>
    [
        "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
        "--max_steps", MaxSteps.ToString(), "--save_steps", "5", "--per_device_train_batch_size", "4", "--train_group_size", "4",
        "--learning_rate", "1e-3", "--seed", "7", "--logging_steps", "1", "--query_max_length", "16", "--key_max_length", "24",
        "--dtype", "fp32", "--select_negative", "random",
    ];

    [Fact]
    public void KilledRunResumedFromLatestRepeatsTheUninterruptedLossSequence()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 200, task: "qa", seed: 5);

        var uninterruptedDir = Path.Combine(dir, "uninterrupted");
        var result = CliProcess.Run(TrainArgs(model, data, uninterruptedDir), environment: SameThreads);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        var expected = TrainerState.Load(Path.Combine(uninterruptedDir, CheckpointFolders.TrainerStateFile)).LossHistory;
        Assert.Equal(MaxSteps, expected.Count);

        var killedDir = Path.Combine(dir, "killed");
        KillAfterFirstCheckpoint(TrainArgs(model, data, killedDir), killedDir);
        var latestBefore = CheckpointFolders.FindLatest(killedDir);
        Assert.NotNull(latestBefore);
        int resumedFrom = TrainerState.Load(Path.Combine(latestBefore!, CheckpointFolders.TrainerStateFile)).GlobalStep;
        Assert.True(resumedFrom < MaxSteps, "the run finished before it could be killed");

        // Debris a crash can leave: a half-written checkpoint (no trainer_state.json) with a higher step, and a temp folder.
        Directory.CreateDirectory(Path.Combine(killedDir, "checkpoint-999", "encoder"));
        Directory.CreateDirectory(Path.Combine(killedDir, ".incomplete-checkpoint-1000-12345"));
        Assert.Equal(latestBefore, CheckpointFolders.FindLatest(killedDir));

        var resumed = CliProcess.Run([.. TrainArgs(model, data, killedDir), "--resume_from_checkpoint", "latest"], environment: SameThreads);
        Assert.True(resumed.ExitCode == 0, resumed.Stdout + resumed.Stderr);
        Assert.Contains($"resumed from {latestBefore} at step {resumedFrom}", resumed.Stdout.Replace("\n", ""));
        var actual = TrainerState.Load(Path.Combine(killedDir, CheckpointFolders.TrainerStateFile)).LossHistory;

        Assert.Equal(expected.Select(p => p.Step), actual.Select(p => p.Step));
        var differing = expected.Zip(actual)
            .Where(pair => !(Math.Abs(pair.First.Loss - pair.Second.Loss) <= 1e-6))
            .Select(pair => $"step {pair.First.Step}: {pair.First.Loss:R} vs {pair.Second.Loss:R}")
            .ToList();
        Assert.True(differing.Count == 0,
            $"resumed from step {resumedFrom}, losses differ by more than 1e-6 (uninterrupted vs resumed): {string.Join("; ", differing)}. " +
            $"Threads: uninterrupted '{ThreadsLine(result.Stdout)}', resumed '{ThreadsLine(resumed.Stdout)}'");
        Assert.Equal(expected.Select(p => p.LearningRate), actual.Select(p => p.LearningRate));
        Assert.False(Directory.Exists(Path.Combine(killedDir, ".incomplete-checkpoint-1000-12345")));
    }

    [Fact]
    public void ResumeOnAnotherThreadCountSaysTheLossesMatchOnlyToRounding()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 40, task: "qa", seed: 5);
        var output = Path.Combine(dir, "threads");
        string[] args =
        [
            "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir, "--max_steps", "2",
            "--save_steps", "1", "--per_device_train_batch_size", "4", "--train_group_size", "4", "--query_max_length", "16", "--key_max_length", "24",
        ];
        var first = CliProcess.Run(args, environment: Threads(2));
        Assert.True(first.ExitCode == 0, first.Stdout + first.Stderr);
        Assert.Equal(2, TrainerState.Load(Path.Combine(output, "checkpoint-1", CheckpointFolders.TrainerStateFile)).TorchThreads);

        var sameThreads = CliProcess.Run([.. args, "--resume_from_checkpoint", Path.Combine(output, "checkpoint-1")],
            environment: Threads(2));
        Assert.True(sameThreads.ExitCode == 0, sameThreads.Stdout + sameThreads.Stderr);
        Assert.DoesNotContain("torch threads", sameThreads.Stdout);

        var otherThreads = CliProcess.Run([.. args, "--resume_from_checkpoint", Path.Combine(output, "checkpoint-1")],
            environment: Threads(1));
        Assert.True(otherThreads.ExitCode == 0, otherThreads.Stdout + otherThreads.Stderr);
        Assert.True(otherThreads.Stdout.Contains("the checkpoint was written by a run with 2 torch threads, this run has 1"), otherThreads.Stdout);
    }

    private static Dictionary<string, string> Threads(int count) => new(SameThreads)
    {
        ["OMP_NUM_THREADS"] = count.ToString(), ["MKL_NUM_THREADS"] = count.ToString(),
    };

    private static string ThreadsLine(string stdout) =>
        stdout.Split('\n').FirstOrDefault(line => line.Contains(" threads", StringComparison.Ordinal))?.Trim() ?? "(not reported)";

    private static void KillAfterFirstCheckpoint(string[] args, string outputDir)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "llm-embedder.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in SameThreads) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (CheckpointFolders.FindLatest(outputDir) is null && !process.HasExited && DateTime.UtcNow < deadline)
            Thread.Sleep(5);
        process.Kill(entireProcessTree: true);   // SIGKILL
        process.WaitForExit();
    }
}
