using System.Text.RegularExpressions;

namespace LlmEmbedder.Training.Checkpointing;

/// <summary>
/// output_dir/checkpoint-&lt;step&gt;/ folders that appear atomically: written under a hidden temporary name, then
/// renamed. A run killed mid-save leaves only a temporary folder, which <see cref="FindLatest"/> never picks
/// and the next save removes.
/// </summary>
public static partial class CheckpointFolders
{
    public const string TrainerStateFile = "trainer_state.json";
    private const string TempPrefix = ".incomplete-";

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex CheckpointName();

    public static string PathFor(string outputDir, int step) => Path.Combine(outputDir, $"checkpoint-{step}");

    /// <summary>Writes a checkpoint folder through <paramref name="writeContents"/> (given the temporary folder) and publishes it.</summary>
    public static string Publish(string outputDir, string finalName, Action<string> writeContents)
    {
        Directory.CreateDirectory(outputDir);
        RemoveIncomplete(outputDir);
        var temp = Path.Combine(outputDir, $"{TempPrefix}{finalName}-{Environment.ProcessId}");
        Directory.CreateDirectory(temp);
        try
        {
            writeContents(temp);
            var final = Path.Combine(outputDir, finalName);
            ReplaceDirectory(temp, final);
            return final;
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Moves <paramref name="source"/> to <paramref name="destination"/>, replacing what was there.</summary>
    public static void ReplaceDirectory(string source, string destination)
    {
        if (Directory.Exists(destination))
        {
            var old = destination + ".old-" + Environment.ProcessId;
            Directory.Move(destination, old);
            Directory.Move(source, destination);
            Directory.Delete(old, recursive: true);
        }
        else
        {
            Directory.Move(source, destination);
        }
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

    private static void RemoveIncomplete(string outputDir)
    {
        foreach (var dir in Directory.EnumerateDirectories(outputDir, TempPrefix + "*"))
            Directory.Delete(dir, recursive: true);
    }
}
