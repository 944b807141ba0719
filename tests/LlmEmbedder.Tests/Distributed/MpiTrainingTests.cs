using Xunit.Abstractions;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Training;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Distributed;

/// <summary>
/// <c>mpirun -np 2 llm-embedder train</c> against a single process on the same global batches: same losses, same
/// output layout written once; a bad input gives one error and a rank failing mid-run ends the job, not a hang.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class MpiTrainingTests : IDisposable
{
    private const int MaxSteps = 20;
    // The two ranks' gradient norms fall from about 28 to 3 over the run: with 8 the first steps clip and the later do not.
    private const double ClipNorm = 8.0;
    // Measured: at most 9e-6 apart from the equivalent single process (float32 summation order, Adam's eps); the single
    // process with the same clip norm drifts by up to 3e-2.
    private const double LossTolerance = 1e-4;
    private readonly ITestOutputHelper output;
    private readonly string dir = TestPaths.NewTempDir("mpi-train");
    private readonly string model;
    private readonly string data;

    public MpiTrainingTests(ITestOutputHelper output)
    {
        this.output = output;
        // No dropout: no random masks, so ranks and a single process compute exactly the same function of the same batch.
        model = CliProcess.TinyChineseModel(dir, dropout: 0.0, name: "tiny-model-no-dropout");
        data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 120, task: "qa", seed: 11);
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string[] TrainArgs(string output, int perDeviceBatch, double maxGradNorm) =>
    [
        "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
        "--inbatch_same_dataset", "epoch", "--negative_cross_device", "true",
        "--per_device_train_batch_size", perDeviceBatch.ToString(), "--train_group_size", "4",
        "--max_steps", MaxSteps.ToString(), "--save_steps", "5", "--logging_steps", "1", "--learning_rate", "1e-3",
        "--seed", "3", "--pooling_method", "mean", "--query_max_length", "16", "--key_max_length", "24", "--dtype", "fp32",
        "--max_grad_norm", maxGradNorm.ToString(System.Globalization.CultureInfo.InvariantCulture), "--report_to", "tensorboard",
    ];

    private static IReadOnlyList<LossPoint> Losses(string output) =>
        TrainerState.Load(Path.Combine(output, CheckpointFolders.TrainerStateFile)).LossHistory;

    /// <summary>
    /// Two ranks × 4 queries with negative_cross_device compute the loss of the same global batch of 8 as one process
    /// with batch 8. Their gradients differ by the factor 1/2 of DDP's averaging (each rank's gradient is the global
    /// loss's through its own shard; the mean of the two is half the single process's). AdamW cancels a constant
    /// factor except through eps (1e-8, against √v of about 1e-3 here) and clipping; clipping half the gradient at c
    /// is clipping the whole at 2c. So one process with --max_grad_norm 2c is the same optimisation as two ranks with c,
    /// and c is chosen so that some steps clip and some do not, where one process with c itself drifts away.
    /// </summary>
    [Fact]
    public void TwoRanksTrainLikeOneProcessWithTheGlobalBatch()
    {
        const double clip = ClipNorm;
        var equivalent = Path.Combine(dir, "single-2c");
        var run = CliProcess.Run(TrainArgs(equivalent, perDeviceBatch: 8, maxGradNorm: 2 * clip));
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        var naive = Path.Combine(dir, "single-c");
        run = CliProcess.Run(TrainArgs(naive, perDeviceBatch: 8, maxGradNorm: clip));
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        var twoRanks = Path.Combine(dir, "two-ranks");
        var (mpi, _) = MpiRun.Run(2, TrainArgs(twoRanks, perDeviceBatch: 4, maxGradNorm: clip));
        Assert.True(mpi.ExitCode == 0, mpi.Stdout + mpi.Stderr);

        var expected = Losses(equivalent);
        var actual = Losses(twoRanks);
        var unscaled = Losses(naive);
        for (int i = 0; i < expected.Count; i++)
            output.WriteLine($"step {expected[i].Step}: one process (clip 2c) {expected[i].Loss:F8}  two ranks (clip c) {actual[i].Loss:F8}  " +
                $"diff {actual[i].Loss - expected[i].Loss:+0.0e+00;-0.0e+00}   one process (clip c) {unscaled[i].Loss:F8}  diff {actual[i].Loss - unscaled[i].Loss:+0.0e+00;-0.0e+00}");
        Assert.Equal(MaxSteps, expected.Count);
        Assert.Equal(expected.Select(p => p.Step), actual.Select(p => p.Step));
        // Step 1: the same parameters on the same batch; only float32 summation order differs.
        Assert.True(Math.Abs(expected[0].Loss - actual[0].Loss) <= 1e-5, $"step 1: one process {expected[0].Loss}, two ranks {actual[0].Loss}");
        double maxDiff = 0, maxNaiveDiff = 0;
        for (int i = 0; i < expected.Count; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(expected[i].Loss - actual[i].Loss));
            maxNaiveDiff = Math.Max(maxNaiveDiff, Math.Abs(unscaled[i].Loss - actual[i].Loss));
            Assert.Equal(expected[i].LearningRate, actual[i].LearningRate, 12);
        }
        Assert.True(maxDiff <= LossTolerance, $"two ranks drift from the equivalent single process by {maxDiff}");
        // The comparison can tell a wrong gradient scale apart (else it would prove nothing about the all-reduce).
        Assert.True(maxNaiveDiff > 10 * LossTolerance, $"one process with the same clip norm differs by only {maxNaiveDiff}");
        // The run really trained.
        Assert.True(actual.Skip(MaxSteps - 3).Average(p => p.Loss) < actual.Take(3).Average(p => p.Loss) - 0.05,
            $"loss went from {actual[0].Loss} to {actual[^1].Loss}");

        // Progress is printed once (rank 0), counting the global batch.
        Assert.Equal(MaxSteps, mpi.Stdout.Split('\n').Count(line => line.StartsWith("step ")));
        Assert.Contains("global batch 8", mpi.Stdout);

        // One writer: the same files as the single process (TensorBoard's event file name carries host and pid), complete checkpoints.
        Assert.Equal(Listing(equivalent), Listing(twoRanks));
        Assert.Single(Directory.GetFiles(Path.Combine(twoRanks, "runs")));
        foreach (var step in new[] { 5, 10, 15 })
            Assert.True(File.Exists(Path.Combine(twoRanks, $"checkpoint-{step}", CheckpointFolders.TrainerStateFile)));

        // A checkpoint of two ranks resumes only with two ranks (the global batches depend on the world size).
        var resumed = CliProcess.Run([.. TrainArgs(twoRanks, perDeviceBatch: 4, maxGradNorm: 1.0), "--resume_from_checkpoint", Path.Combine(twoRanks, "checkpoint-10")]);
        Assert.NotEqual(0, resumed.ExitCode);
        Assert.Contains("world size 2, this run has 1", Assert.Single(resumed.StderrLines));
    }

    /// <summary>
    /// With dropout on (masks seeded per step and rank), two ranks stopped after step 7 and resumed from checkpoint-5
    /// repeat the uninterrupted two-rank losses: every rank loads the checkpoint and the global sampler position.
    /// </summary>
    [Fact]
    public void ResumedTwoRankRunRepeatsTheUninterruptedLosses()
    {
        var withDropout = CliProcess.TinyChineseModel(dir);
        string[] Args(string output) => [.. TrainArgs(output, perDeviceBatch: 4, maxGradNorm: ClipNorm).Select(a => a == model ? withDropout : a)];
        var uninterrupted = Path.Combine(dir, "uninterrupted");
        var (run, _) = MpiRun.Run(2, Args(uninterrupted));
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        var stopped = Path.Combine(dir, "stopped");
        (run, _) = MpiRun.Run(2, [.. Args(stopped), "--early_exit_steps", "7"]);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        (run, _) = MpiRun.Run(2, [.. Args(stopped), "--resume_from_checkpoint", "latest"]);
        Assert.True(run.ExitCode == 0, run.Stdout + run.Stderr);
        Assert.Contains("resumed from " + Path.Combine(stopped, "checkpoint-5") + " at step 5", run.Stdout);

        var expected = Losses(uninterrupted);
        var actual = Losses(stopped);
        Assert.Equal(expected.Select(p => p.Step), actual.Select(p => p.Step));
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Math.Abs(expected[i].Loss - actual[i].Loss) <= 1e-5 * Math.Max(1.0, Math.Abs(expected[i].Loss)),
                $"step {expected[i].Step}: uninterrupted {expected[i].Loss}, resumed {actual[i].Loss}");
    }

    /// <summary>Relative paths of every file, with TensorBoard's event file reduced to its folder.</summary>
    private static string[] Listing(string root) => Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(root, f))
        .Select(f => f.StartsWith("runs/") ? "runs/<events>" : f)
        .Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void BadInputIsOneErrorFromOneRankAndNothingWritten()
    {
        var bad = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Invalid", "malformed_json.jsonl");
        var expected = File.ReadAllText(Path.ChangeExtension(bad, ".expected")).Trim().Replace("{file}", bad);
        var output = Path.Combine(dir, "bad");
        var args = TrainArgs(output, perDeviceBatch: 4, maxGradNorm: 1.0);
        args[Array.IndexOf(args, "--train_data") + 1] = bad;
        var (result, elapsed) = MpiRun.Run(2, args, TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, result.ExitCode);
        // mpirun adds its own note about the non-zero exit; ours appears once.
        Assert.Equal(1, result.Stderr.Split('\n').Count(line => line == "llm-embedder: error: " + expected));
        Assert.Equal(1, result.Stderr.Split('\n').Count(line => line.StartsWith("llm-embedder:")));
        Assert.False(Directory.Exists(output), "output_dir was created before the bad data was detected");
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"took {elapsed}");
    }

    /// <summary>An output_dir that only rank 0 touches (here a file of that name) is still a startup error: one message, no MPI_Abort.</summary>
    [Fact]
    public void OutputDirThatCannotBeMadeIsOneErrorWithoutAnAbort()
    {
        var output = Path.Combine(dir, "taken");
        File.WriteAllText(output, "a file, not a folder");
        var (result, elapsed) = MpiRun.Run(2, TrainArgs(output, perDeviceBatch: 4, maxGradNorm: 1.0), TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, result.ExitCode);
        var ours = Assert.Single(result.Stderr.Split('\n'), line => line.StartsWith("llm-embedder:"));
        Assert.StartsWith("llm-embedder: error: ", ours);
        Assert.Contains(output, ours);
        Assert.DoesNotContain("MPI_ABORT", result.Stderr);
        Assert.Equal("a file, not a folder", File.ReadAllText(output));
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"took {elapsed}");
    }

    /// <summary>
    /// output_dir held by another training: rank 0's lock fails before the other ranks have read their data, a startup
    /// error like a bad input (one message, every rank exits, no MPI_Abort), and the holder's folder is untouched.
    /// </summary>
    [Fact]
    public void OutputDirBeingWrittenIsOneErrorWithoutAnAbort()
    {
        var output = Path.Combine(dir, "held");
        using var otherTraining = OutputDirClaim.Take(output, OutputDirUse.NewRun, []);
        var (result, elapsed) = MpiRun.Run(2, TrainArgs(output, perDeviceBatch: 4, maxGradNorm: 1.0), TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, result.ExitCode);
        var ours = Assert.Single(result.Stderr.Split('\n'), line => line.StartsWith("llm-embedder:"));
        Assert.StartsWith($"llm-embedder: error: {output} is being written by another training (pid {Environment.ProcessId}, started ", ours);
        Assert.DoesNotContain("MPI_ABORT", result.Stderr);
        Assert.Equal([OutputDirClaim.LockFileName], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"took {elapsed}");
    }

    /// <summary>
    /// Rank 0 alone fails mid-run (its checkpoint cannot be published: a file holds the folder's name) while rank 1
    /// waits at the checkpoint barrier: MPI_Abort ends both within seconds with a non-zero exit and rank 0's message.
    /// </summary>
    [Fact]
    public void RankFailingMidRunEndsTheJobInsteadOfHanging()
    {
        var output = Path.Combine(dir, "blocked");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "checkpoint-5"), "not a folder");
        // The folder is not empty; --overwrite_output_dir lets the run start, and it removes only what a run writes (no such file).
        var (result, elapsed) = MpiRun.Run(2, [.. TrainArgs(output, perDeviceBatch: 4, maxGradNorm: 1.0), "--overwrite_output_dir"], TimeSpan.FromMinutes(2));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Equal(1, result.Stderr.Split('\n').Count(line => line.StartsWith("llm-embedder: error:") && line.Contains("checkpoint-5")));
        Assert.Contains("step 5/", result.Stdout);
        Assert.DoesNotContain("step 6/", result.Stdout);
        Assert.True(elapsed < TimeSpan.FromSeconds(60), $"took {elapsed}");
    }
}
