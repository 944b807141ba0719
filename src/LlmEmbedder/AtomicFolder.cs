namespace LlmEmbedder;

/// <summary>
/// Folders that appear whole or not at all (checkpoints, the final model, exports, generated model folders): written
/// under a hidden temporary name beside their destination, then renamed into place, replacing what was there. A
/// process killed mid-write leaves only a temporary folder (<c>.incomplete-…</c>), which <see cref="RemoveIncomplete"/>
/// clears; readers that look for a folder by name never see it.
/// </summary>
public static class AtomicFolder
{
    private const string IncompletePrefix = ".incomplete-";

    /// <summary>
    /// Writes <paramref name="destination"/> through <paramref name="writeContents"/> (given the temporary folder to fill)
    /// and renames it into place, replacing a folder of that name.
    /// </summary>
    public static void Publish(string destination, Action<string> writeContents)
    {
        var full = Path.GetFullPath(destination).TrimEnd(Path.DirectorySeparatorChar);
        WriteAside(Path.GetDirectoryName(full)!, Path.GetFileName(full), full, temp =>
        {
            writeContents(temp);
            Replace(temp, destination);
        });
    }

    /// <summary>
    /// For a folder that holds more than what is written (output_dir: the final model beside checkpoints and logs):
    /// every entry <paramref name="writeContents"/> puts into the temporary folder is written before the first one moves,
    /// then each replaces its namesake in <paramref name="directory"/>, a folder entry as a whole.
    /// </summary>
    public static void PublishEntries(string directory, Action<string> writeContents) =>
        WriteAside(Path.GetFullPath(directory), "entries", Path.GetFullPath(directory), temp =>
        {
            writeContents(temp);
            foreach (var entry in Directory.EnumerateFileSystemEntries(temp))
            {
                var destination = Path.Combine(directory, Path.GetFileName(entry));
                if (Directory.Exists(entry)) Replace(entry, destination);
                else File.Move(entry, destination, overwrite: true);
            }
        });

    /// <summary>Removes the temporary folders that publishers killed mid-write left in <paramref name="directory"/>.</summary>
    public static void RemoveIncomplete(string directory)
    {
        if (!Directory.Exists(directory)) return;
        foreach (var dir in Directory.EnumerateDirectories(directory, IncompletePrefix + "*"))
            Directory.Delete(dir, recursive: true);
    }

    /// <param name="destination">Where the temporary folder's contents go: a failure names the path there, not the temporary one.</param>
    private static void WriteAside(string parent, string name, string destination, Action<string> writeAndMove)
    {
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $"{IncompletePrefix}{name}-{Environment.ProcessId}");
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        try
        {
            writeAndMove(temp);
        }
        catch (Exception e) when ((e is EmbedderException ? e.Message : FileSystemErrors.Describe(e, writing: true)) is { } message
                                  && message.Contains(temp, StringComparison.Ordinal))
        {
            // "no space left on device while writing out/checkpoint-20/optimizer.bin", not the hidden folder's name.
            throw new EmbedderException(message.Replace(temp, destination, StringComparison.Ordinal), e);
        }
        finally
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
    }

    /// <summary>Moves <paramref name="source"/> to <paramref name="destination"/>, replacing what was there.</summary>
    private static void Replace(string source, string destination)
    {
        if (!Directory.Exists(destination))
        {
            Directory.Move(source, destination);
            return;
        }
        // Two renames: a folder cannot be renamed over a non-empty one. The old one is gone only after the new one is in place.
        var old = $"{destination.TrimEnd(Path.DirectorySeparatorChar)}.old-{Environment.ProcessId}";
        Directory.Move(destination, old);
        Directory.Move(source, destination);
        Directory.Delete(old, recursive: true);
    }
}
