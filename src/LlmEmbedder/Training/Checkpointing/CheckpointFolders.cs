using System.Text.RegularExpressions;

namespace LlmEmbedder.Training.Checkpointing;

/// <summary>
/// output_dir/checkpoint-&lt;step&gt;/ folders and the final model, published through <see cref="AtomicFolder"/>. A run
/// killed mid-save leaves only a temporary folder, which <see cref="FindLatest"/> never picks and the next save removes.
/// </summary>
public static partial class CheckpointFolders
{
    public const string TrainerStateFile = "trainer_state.json";

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();

    public static string PathFor(string outputDir, int step) => Path.Combine(outputDir, $"checkpoint-{step}");

    /// <summary>
    /// Writes checkpoint-<paramref name="step"/> through <paramref name="writeContents"/> (given the temporary folder) and
    /// publishes it; what earlier killed saves left behind goes first.
    /// </summary>
    public static string Publish(string outputDir, int step, Action<string> writeContents)
    {
        AtomicFolder.RemoveIncomplete(outputDir);
        var path = PathFor(outputDir, step);
        AtomicFolder.Publish(path, writeContents);
        return path;
    }

    /// <summary>Writes the final model's entries (args.json, encoder folders) into output_dir itself, each replacing its namesake.</summary>
    public static void PublishFinal(string outputDir, Action<string> writeContents)
    {
        AtomicFolder.RemoveIncomplete(outputDir);
        AtomicFolder.PublishEntries(outputDir, writeContents);
    }

    /// <summary>The completed checkpoint with the highest step, or null.</summary>
    public static string? FindLatest(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return null;
        return Directory.EnumerateDirectories(outputDir)
            .Select(dir => (Dir: dir, Match: CheckpointName().Match(Path.GetFileName(dir))))
            .Where(c => c.Match.Success && File.Exists(Path.Combine(c.Dir, TrainerStateFile)))
            .OrderByDescending(c => long.Parse(c.Match.Groups[1].Value))
            .Select(c => c.Dir)
            .FirstOrDefault();
    }

    /// <summary>Resolves --resume_from_checkpoint: a folder, or "latest" in output_dir.</summary>
    public static string Resolve(string argument, string outputDir)
    {
        if (argument == "latest")
            return FindLatest(outputDir) ?? throw new EmbedderException($"--resume_from_checkpoint latest: no completed checkpoint in {outputDir}");
        if (!File.Exists(Path.Combine(argument, TrainerStateFile)))
            throw new EmbedderException($"{argument}: not a completed checkpoint (no {TrainerStateFile})");
        return argument;
    }
}
