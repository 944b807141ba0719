using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// output_dir's claim on its own: what a new run, --overwrite_output_dir and --resume_from_checkpoint may find there,
/// what the lock says to a second claim, and what is left behind. The two-process case is ConcurrentTrainingCliTests.
/// </summary>
public sealed class OutputDirClaimTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("claim");
    private readonly string output;

    public OutputDirClaimTests() => output = Path.Combine(dir, "out");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private OutputDirClaim Take(OutputDirUse use = OutputDirUse.NewRun, params string[] inputs) => OutputDirClaim.Take(output, use, inputs);

    private string LockFile => Path.Combine(output, OutputDirClaim.LockFileName);

    /// <summary>Every entry under output_dir with its size and modification time.</summary>
    private List<string> Tree() =>
        Directory.EnumerateFileSystemEntries(output, "*", SearchOption.AllDirectories)
            .Select(path => new FileInfo(path))
            .Select(info => $"{Path.GetRelativePath(output, info.FullName)} {(info.Attributes.HasFlag(FileAttributes.Directory) ? "dir" : info.Length)} {info.LastWriteTimeUtc.Ticks}")
            .Order(StringComparer.Ordinal).ToList();

    private void Write(string relative, string text = "x")
    {
        var path = Path.Combine(output, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void NewFolderIsLockedWithThisProcessAndRemovedWhenTheRunWroteNothing()
    {
        using (var claim = Take())
        {
            Assert.True(claim.CreatedFolder);
            Assert.Contains($"\"pid\":{Environment.ProcessId}", ReadWhileLocked(LockFile));
        }
        Assert.False(Directory.Exists(output), "a failed start left output_dir behind");
    }

    [Fact]
    public void FinishedRunKeepsItsOutputAndDropsTheLockFile()
    {
        using (Take())
            Write("args.json", "{}");
        Assert.Equal(["args.json"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
    }

    [Fact]
    public void SecondClaimFailsAtOnceNamingTheHolder()
    {
        using var first = Take();
        var error = Assert.Throws<EmbedderException>(() => Take());
        Assert.StartsWith($"{output} is being written by another training (pid {Environment.ProcessId}, started {DateTime.Now:yyyy-MM-dd} ", error.Message);
        Assert.EndsWith("); wait for it or choose another --output_dir", error.Message);
        // Even with --overwrite_output_dir or a resume: the lock is not about what the folder holds.
        Assert.Contains("is being written by another training", Assert.Throws<EmbedderException>(() => Take(OutputDirUse.Overwrite)).Message);
        Assert.Contains("is being written by another training", Assert.Throws<EmbedderException>(() => Take(OutputDirUse.Resume)).Message);
        Assert.True(File.Exists(LockFile), "a refused claim removed the holder's lock file");
    }

    [Fact]
    public void EarlierRunIsRefusedWithoutTouchingAnything()
    {
        Write("args.json", "{}");
        Write("checkpoint-2/trainer_state.json", "{}");
        var before = Tree();

        var error = Assert.Throws<EmbedderException>(() => Take());

        Assert.Equal($"{output} is not empty (args.json, checkpoint-2); pass --overwrite_output_dir to replace an earlier run's output there, " +
                     "--resume_from_checkpoint latest to continue it, or choose another --output_dir", error.Message);
        Assert.Equal(before, Tree());
    }

    [Fact]
    public void LockFileOfAKilledRunBlocksNothing()
    {
        // What a SIGKILLed run leaves: its lock file, no longer held (the kernel released the flock with the process).
        Write(OutputDirClaim.LockFileName, """{"pid":999999,"host":"elsewhere","started":"2020-01-01 00:00:00 +00:00"}""");
        using (var claim = Take())
            Assert.Contains($"\"pid\":{Environment.ProcessId}", ReadWhileLocked(LockFile));

        // With the killed run's checkpoints beside it, the folder is not empty, but nobody is writing it.
        Write("checkpoint-5/trainer_state.json", "{}");
        Write(OutputDirClaim.LockFileName, "{}");
        Assert.StartsWith($"{output} is not empty (checkpoint-5)", Assert.Throws<EmbedderException>(() => Take()).Message);
        using (Take(OutputDirUse.Resume)) { }
    }

    [Fact]
    public void InputsInsideOutputDirAreNotAnEarlierRun()
    {
        Write("initial-model/config.json", "{}");
        using var claim = Take(OutputDirUse.NewRun, Path.Combine(output, "initial-model"), "BAAI/bge-small-zh-v1.5");
        Assert.False(claim.CreatedFolder);
    }

    [Fact]
    public void OverwriteRemovesWhatAnEarlierRunWroteAndNothingElse()
    {
        string[] earlierRun =
        [
            "args.json", "trainer_state.json", "loss.png", "encoder/config.json", "query_encoder/config.json", "key_encoder/config.json",
            "checkpoint-5/trainer_state.json", "runs/events.out.tfevents.1.host", ".incomplete-checkpoint-7-123/args.json",
            ".final-staging/args.json", "encoder.old-55/config.json", ".loss.png.tmp-12-ab",
        ];
        string[] kept = ["initial-model/config.json", "checkpoint-9/encoder/config.json", "notes.txt", "checkpoint-x/keep", "runs.txt"];
        foreach (var file in earlierRun.Concat(kept)) Write(file);
        var reports = new List<string>();

        using (var claim = Take(OutputDirUse.Overwrite, Path.Combine(output, "initial-model"), Path.Combine(output, "checkpoint-9", "encoder")))
        {
            Assert.True(File.Exists(Path.Combine(output, "args.json")), "removed before the run's inputs proved good");
            claim.ClearEarlierRun(reports.Add);
            Assert.Equal([OutputDirClaim.LockFileName, "checkpoint-9", "checkpoint-x", "initial-model", "notes.txt", "runs.txt"],
                Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        }
        Assert.Equal(
            $"--overwrite_output_dir: removed an earlier run's .final-staging, .incomplete-checkpoint-7-123, .loss.png.tmp-12-ab, args.json and 8 more from {output}",
            Assert.Single(reports));
    }

    [Fact]
    public void ResumeContinuesTheFolderAsItIs()
    {
        Write("checkpoint-5/trainer_state.json", "{}");
        Write("runs/events.out.tfevents.1.host");
        using (var claim = Take(OutputDirUse.Resume))
            claim.ClearEarlierRun();
        Assert.Equal(["checkpoint-5", "runs"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void FileWhereOutputDirShouldBe()
    {
        File.WriteAllText(output, "a file");
        Assert.Equal($"--output_dir {output}: is a file; expected a folder", Assert.Throws<EmbedderException>(() => Take()).Message);
        Assert.Equal("a file", File.ReadAllText(output));
    }

    /// <summary>The lock file's text, read the way another process would while this one holds it.</summary>
    private static string ReadWhileLocked(string path)
    {
        using var handle = Posix.OpenWithoutLock(path)!;
        var buffer = new byte[4096];
        return System.Text.Encoding.UTF8.GetString(buffer, 0, RandomAccess.Read(handle, buffer, 0));
    }
}
