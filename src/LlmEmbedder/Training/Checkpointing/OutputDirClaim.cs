using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LlmEmbedder.Checkpoints;

namespace LlmEmbedder.Training.Checkpointing;

/// <summary>How a run may use an output_dir that already holds something.</summary>
public enum OutputDirUse
{
    /// <summary>Only an empty or new folder (Hugging Face's scripts without --overwrite_output_dir).</summary>
    NewRun,

    /// <summary>--overwrite_output_dir: an earlier run's output there is removed before this run writes.</summary>
    Overwrite,

    /// <summary>--resume_from_checkpoint: the folder is continued as it is.</summary>
    Resume,
}

/// <summary>
/// A training run's hold on its output_dir, from before anything is written until the run ends. Exclusive: an OS lock
/// on output_dir/.llm-embedder.lock (flock, through FileShare.None) that the kernel drops when the process dies, so a
/// killed run never blocks the next one, and a second run into the folder fails at once, naming the first. Refused
/// when the folder already holds something, unless <see cref="OutputDirUse"/> allows it; the run's own inputs kept
/// there (the embedded default's initial-model) do not count. A run that fails before writing anything leaves the
/// folder as it found it.
/// </summary>
public sealed partial class OutputDirClaim : IDisposable
{
    public const string LockFileName = ".llm-embedder.lock";

    // errno EWOULDBLOCK: .NET's HResult when FileShare.None meets another process's lock.
    private const int HeldByAnotherProcess = 11;

    private readonly string outputDir;
    private readonly string lockPath;
    private readonly OutputDirUse use;
    private readonly IReadOnlySet<string> inputEntries;
    private FileStream? lockStream;

    private OutputDirClaim(string outputDir, OutputDirUse use, IReadOnlySet<string> inputEntries)
    {
        this.outputDir = outputDir;
        this.use = use;
        this.inputEntries = inputEntries;
        lockPath = Path.Combine(outputDir, LockFileName);
    }

    /// <summary>This run made output_dir (so a failed start removes it again).</summary>
    public bool CreatedFolder { get; private set; }

    /// <summary>The claim a training run with these arguments makes (rank 0 only: the other ranks never write output_dir).</summary>
    public static OutputDirClaim For(ModelArguments modelArgs, TrainingArguments trainArgs) => Take(
        trainArgs.OutputDir,
        trainArgs.ResumeFromCheckpoint is not null ? OutputDirUse.Resume : trainArgs.OverwriteOutputDir ? OutputDirUse.Overwrite : OutputDirUse.NewRun,
        [modelArgs.QueryEncoder, modelArgs.KeyEncoder]);

    /// <param name="inputs">Paths the run reads; those inside output_dir are neither counted as an earlier run's output nor removed.</param>
    public static OutputDirClaim Take(string outputDir, OutputDirUse use, IEnumerable<string> inputs)
    {
        OutputPath.CheckFolder(outputDir, "--output_dir");
        var claim = new OutputDirClaim(outputDir, use, InputEntries(outputDir, inputs));
        // Checked before the lock too, so refusing a finished run's folder touches nothing in it.
        claim.RefuseEarlierRun();
        try
        {
            claim.Lock();
            // An earlier run may have finished between that check and the lock.
            claim.RefuseEarlierRun();
            claim.WriteOwner();
            return claim;
        }
        catch
        {
            claim.Dispose();
            throw;
        }
    }

    /// <summary>
    /// With --overwrite_output_dir: removes what an earlier training wrote in output_dir (checkpoint-N folders, runs/,
    /// the final model's folders, args.json, trainer_state.json, loss.png, leftovers of an interrupted save), so none of
    /// it is taken for this run's (by --resume_from_checkpoint latest, or as a second curve in TensorBoard). Other
    /// entries and this run's inputs stay: Hugging Face's flag allows writing into a non-empty folder, it deletes nothing
    /// a user put there. Call it once the run's inputs proved good, just before the first write.
    /// </summary>
    public void ClearEarlierRun(Action<string>? report = null)
    {
        if (use != OutputDirUse.Overwrite || !Directory.Exists(outputDir)) return;
        var removed = new List<string>();
        foreach (var entry in Directory.EnumerateFileSystemEntries(outputDir).Order(StringComparer.Ordinal).ToList())
        {
            var name = Path.GetFileName(entry);
            if (inputEntries.Contains(name)) continue;
            if (Directory.Exists(entry) && IsRunFolder(name)) Directory.Delete(entry, recursive: true);
            else if (File.Exists(entry) && IsRunFile(name)) File.Delete(entry);
            else continue;
            removed.Add(name);
        }
        if (removed.Count > 0) report?.Invoke($"--overwrite_output_dir: removed an earlier run's {Sample(removed)} from {outputDir}");
    }

    public void Dispose()
    {
        if (lockStream is null)
        {
            RemoveFolderIfUntouched();
            return;
        }
        try
        {
            // Removed while still held, so no run can take a lock on a file that is about to vanish.
            File.Delete(lockPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The lock itself goes with the handle; a stale file never blocks a later run.
        }
        lockStream.Dispose();
        lockStream = null;
        RemoveFolderIfUntouched();
    }

    private void RemoveFolderIfUntouched()
    {
        try
        {
            if (CreatedFolder && Directory.Exists(outputDir) && !Directory.EnumerateFileSystemEntries(outputDir).Any()) Directory.Delete(outputDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // An empty folder left behind is harmless; the run's own error matters more.
        }
    }

    private void Lock()
    {
        // A run that ends removes the lock file; if that happened between our open and our lock, we hold a lock on a
        // file no one else will open, so we start again on the path.
        for (int attempt = 0; ; attempt++)
        {
            CreatedFolder |= !Directory.Exists(outputDir);
            Directory.CreateDirectory(outputDir);
            try
            {
                lockStream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException e) when (e.GetType() == typeof(IOException) && e.HResult == HeldByAnotherProcess)
            {
                throw Busy();
            }
            if (File.Exists(lockPath) || attempt == 3) return;
            lockStream.Dispose();
            lockStream = null;
        }
    }

    private void WriteOwner()
    {
        var owner = new JsonObject
        {
            ["pid"] = Environment.ProcessId,
            ["host"] = Environment.MachineName,
            ["started"] = DateTimeOffset.Now.ToString("yyyy-MM-dd HH:mm:ss zzz", System.Globalization.CultureInfo.InvariantCulture),
        };
        lockStream!.SetLength(0);
        lockStream.Write(Encoding.UTF8.GetBytes(owner.ToJsonString() + "\n"));
        lockStream.Flush();
    }

    /// <summary>Throws when output_dir holds anything but this run's inputs and the use does not allow it; touches nothing.</summary>
    private void RefuseEarlierRun()
    {
        if (use != OutputDirUse.NewRun || !Directory.Exists(outputDir)) return;
        var entries = Directory.EnumerateFileSystemEntries(outputDir).Select(e => Path.GetFileName(e))
            .Where(name => name != LockFileName && !inputEntries.Contains(name)).Order(StringComparer.Ordinal).ToList();
        if (entries.Count == 0) return;
        if (lockStream is null && HeldElsewhere()) throw Busy();
        throw new EmbedderException($"{outputDir} is not empty ({Sample(entries)}); pass --overwrite_output_dir to replace an earlier run's output " +
            "there, --resume_from_checkpoint latest to continue it, or choose another --output_dir");
    }

    /// <summary>Whether a running training holds the lock file (opening it to find out changes nothing in it).</summary>
    private bool HeldElsewhere()
    {
        if (!File.Exists(lockPath)) return false;
        try
        {
            using var probe = new FileStream(lockPath, FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (IOException e) when (e.GetType() == typeof(IOException) && e.HResult == HeldByAnotherProcess)
        {
            return true;
        }
        catch (FileNotFoundException)
        {
            return false;
        }
    }

    private EmbedderException Busy()
    {
        // The holder writes its name right after taking the lock: give it a moment when we come in between.
        JsonObject? owner = null;
        for (int wait = 0; wait < 20 && (owner = ReadOwner()) is null; wait++) Thread.Sleep(100);
        var who = owner is null ? "process unknown"
            : $"pid {owner["pid"]}{(owner["host"]?.ToString() is { } host && host != Environment.MachineName ? $" on {host}" : "")}, started {owner["started"]}";
        return new EmbedderException($"{outputDir} is being written by another training ({who}); wait for it or choose another --output_dir");
    }

    private JsonObject? ReadOwner()
    {
        using var handle = Posix.OpenWithoutLock(lockPath);
        if (handle is null) return null;
        var buffer = new byte[4096];
        int length = RandomAccess.Read(handle, buffer, 0);
        try
        {
            return JsonNode.Parse(buffer.AsSpan(0, length)) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>The first path segment, inside output_dir, of each input that lies there.</summary>
    private static IReadOnlySet<string> InputEntries(string outputDir, IEnumerable<string> inputs)
    {
        var root = Path.GetFullPath(outputDir);
        var entries = new HashSet<string>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            var relative = Path.GetRelativePath(root, Path.GetFullPath(input));
            if (relative == "." || relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative)) continue;
            entries.Add(relative.Split(Path.DirectorySeparatorChar)[0]);
        }
        return entries;
    }

    // What Trainer and CheckpointFolders write at the top of output_dir; a folder being replaced is renamed to {name}.old-{pid} first.
    private static bool IsRunFolder(string name)
    {
        var replaced = ReplacedSuffix().Replace(name, "");
        return CheckpointName().IsMatch(replaced)
            || replaced is "runs" or ModelFolder.TiedEncoderFolder or ModelFolder.QueryEncoderFolder or ModelFolder.KeyEncoderFolder
            || InterruptedSave().IsMatch(name);
    }

    private static bool IsRunFile(string name) =>
        name is RunArguments.FileName or CheckpointFolders.TrainerStateFile or "loss.png" || InterruptedSave().IsMatch(name);

    private static string Sample(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(4)) + (names.Count > 4 ? $" and {names.Count - 4} more" : "");

    [GeneratedRegex(@"^checkpoint-\d+$")]
    private static partial Regex CheckpointName();

    [GeneratedRegex(@"\.old-\d+$")]
    private static partial Regex ReplacedSuffix();

    // Temporary folders and files of an interrupted save: .incomplete-*, .final-staging, .{file}.tmp-*.
    [GeneratedRegex(@"^\.(incomplete-.*|final-staging|.+\.tmp-.*)$")]
    private static partial Regex InterruptedSave();
}
