namespace LlmEmbedder;

/// <summary>Writes that never leave a half-written file behind: write aside, then rename.</summary>
public static class FileUtil
{
    public static void WriteAllTextAtomic(string path, string text) => WriteAtomic(path, stream =>
    {
        using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false));
        writer.Write(text);
    });

    /// <summary>A file-system failure is an <see cref="EmbedderException"/> naming <paramref name="path"/> (not the temporary file).</summary>
    public static void WriteAtomic(string path, Action<Stream> write)
    {
        string? tempPath = null;
        try
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
            Directory.CreateDirectory(directory);
            tempPath = Path.Combine(directory, $".{Path.GetFileName(path)}.tmp-{Environment.ProcessId}-{Guid.NewGuid():N}");
            using (var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write))
                write(stream);
            File.Move(tempPath, path, overwrite: true);
        }
        catch (Exception e) when (FileSystemErrors.Describe(e, path, writing: true) is { } message)
        {
            throw new EmbedderException(message, e);
        }
        finally
        {
            if (tempPath is not null && File.Exists(tempPath)) File.Delete(tempPath);
        }
    }
}
