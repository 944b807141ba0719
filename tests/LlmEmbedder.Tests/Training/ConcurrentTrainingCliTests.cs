using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// Trainings that meet in one output_dir: two started together (one trains, the other stops within seconds naming it),
/// a third into the finished folder (refused, nothing changes), and --overwrite_output_dir (the earlier run goes first).
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class ConcurrentTrainingCliTests : IDisposable
{
    private const int MaxSteps = 30;
    private readonly string dir = TestPaths.NewTempDir("concurrent");
    private readonly string model;
    private readonly string data;
    private readonly string output;

    public ConcurrentTrainingCliTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 200, task: "qa", seed: 5);
        output = Path.Combine(dir, "out");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string[] TrainArgs(int maxSteps = MaxSteps, int saveSteps = 10) =>
    [
        "train", "--query_encoder", model, "--train_data", data, "--output_dir", output, "--data_root", dir,
        "--max_steps", maxSteps.ToString(), "--save_steps", saveSteps.ToString(), "--per_device_train_batch_size", "4", "--train_group_size", "4",
        "--query_max_length", "16", "--key_max_length", "24", "--dtype", "fp32", "--logging_steps", "5", "--report_to", "tensorboard",
    ];

    /// <summary>Every entry under output_dir with its size and modification time.</summary>
    private List<string> Tree() =>
        Directory.EnumerateFileSystemEntries(output, "*", SearchOption.AllDirectories)
            .Select(path => new FileInfo(path))
            .Select(info => $"{Path.GetRelativePath(output, info.FullName)} {(info.Attributes.HasFlag(FileAttributes.Directory) ? "dir" : info.Length)} {info.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal).ToList();

    private string[] TensorboardEventFiles() => Directory.GetFiles(Path.Combine(output, "runs"), "events.out.tfevents.*", SearchOption.AllDirectories);

    [Fact]
    public async Task TwoRunsStartedTogetherOneTrainsTheOtherStopsAtOnceAndAThirdChangesNothing()
    {
        var clock = Stopwatch.StartNew();
        using var first = CliProcess.Start(TrainArgs());
        using var second = CliProcess.Start(TrainArgs());
        CliProcess.Running[] runs = [first, second];
        // The run that lost the lock is the one that ends first.
        var exits = runs.Select(run => run.Process.WaitForExitAsync()).ToArray();
        int loserIndex = Array.IndexOf(exits, await Task.WhenAny(exits).WaitAsync(TimeSpan.FromMinutes(5)));
        var loserElapsed = clock.Elapsed;
        var (loser, winner) = (runs[loserIndex], runs[1 - loserIndex]);
        var lost = loser.Wait(TimeSpan.FromMinutes(1));
        var won = winner.Wait(TimeSpan.FromMinutes(10));

        Assert.True(won.ExitCode == 0, won.Stdout + won.Stderr);
        Assert.Contains("saved the final model", won.Stdout);
        Assert.Equal(1, lost.ExitCode);
        var line = Assert.Single(lost.StderrLines);
        Assert.StartsWith($"llm-embedder: error: {output} is being written by another training (pid {winner.Process.Id}, started ", line);
        Assert.EndsWith("); wait for it or choose another --output_dir", line);
        Assert.DoesNotContain("saved", lost.Stdout);
        Assert.True(loserElapsed < TimeSpan.FromSeconds(30), $"the second run took {loserElapsed} to stop");

        // The winner's output is whole and only its own: final model and last checkpoint load, one TensorBoard curve.
        var state = TrainerState.Load(Path.Combine(output, CheckpointFolders.TrainerStateFile));
        Assert.Equal(MaxSteps, state.GlobalStep);
        Assert.Equal(Enumerable.Range(1, MaxSteps), state.LossHistory.Select(p => p.Step));
        Assert.Equal(Path.Combine(output, "checkpoint-20"), CheckpointFolders.FindLatest(output));
        foreach (var encoderDir in new[] { Path.Combine(output, "encoder"), Path.Combine(output, "checkpoint-20", "encoder") })
        {
            using var encoder = SentenceEncoder.Load(encoderDir);
            Assert.All(encoder.Encode(["今天星期几"], EmbeddingRole.Query), v => Assert.True(float.IsFinite(v)));
        }
        Assert.Single(TensorboardEventFiles());
        Assert.False(File.Exists(Path.Combine(output, OutputDirClaim.LockFileName)), "the finished run left its lock file");

        // A third run into the finished folder, without --overwrite_output_dir: refused, and the folder is as it was.
        var before = Tree();
        var third = CliProcess.Run(TrainArgs());
        Assert.Equal(1, third.ExitCode);
        Assert.Equal($"llm-embedder: error: {output} is not empty (args.json, checkpoint-10, checkpoint-20, encoder and 3 more); " +
                     "pass --overwrite_output_dir to replace an earlier run's output there, --resume_from_checkpoint latest to continue it, " +
                     "or choose another --output_dir", Assert.Single(third.StderrLines));
        Assert.Equal(before, Tree());
    }

    [Fact]
    public void OverwriteOutputDirReplacesTheEarlierRunAndKeepsOtherFiles()
    {
        var earlier = CliProcess.Run(TrainArgs(maxSteps: 6, saveSteps: 5));
        Assert.True(earlier.ExitCode == 0, earlier.Stdout + earlier.Stderr);
        Assert.True(Directory.Exists(Path.Combine(output, "checkpoint-5")));
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");

        var again = CliProcess.Run([.. TrainArgs(maxSteps: 2, saveSteps: 1), "--overwrite_output_dir"]);

        Assert.True(again.ExitCode == 0, again.Stdout + again.Stderr);
        Assert.Contains($"--overwrite_output_dir: removed an earlier run's args.json, checkpoint-5, encoder, loss.png and 2 more from {output}",
            again.Stdout.Replace("\n", ""));
        // checkpoint-5 would otherwise be "latest" for a resume of this 2-step run.
        Assert.Equal(Path.Combine(output, "checkpoint-1"), CheckpointFolders.FindLatest(output));
        Assert.False(Directory.Exists(Path.Combine(output, "checkpoint-5")));
        Assert.Equal(2, TrainerState.Load(Path.Combine(output, CheckpointFolders.TrainerStateFile)).GlobalStep);
        Assert.Single(TensorboardEventFiles());
        Assert.Equal("mine", File.ReadAllText(Path.Combine(output, "notes.txt")));
    }
}
