namespace LlmEmbedder;

/// <summary>
/// Checks a command makes before it loads a model or encodes anything: that what it will write can be written. A
/// mistake in the command line then costs a second, not an encoded corpus; failures no check can foresee (a full disk)
/// are still one line, from <see cref="FileSystemErrors"/>. Nothing is created here.
/// </summary>
public static class OutputPath
{
    /// <summary>A folder the command creates, or writes into if it exists.</summary>
    public static void CheckFolder(string path, string flag)
    {
        if (File.Exists(path)) throw new EmbedderException($"{flag} {path}: is a file; expected a folder");
        CheckCreatable(path, flag, Path.GetFullPath(path));
    }

    /// <summary>A file the command writes, replacing it if it exists (written aside in its folder, then renamed).</summary>
    public static void CheckFile(string path, string flag)
    {
        if (Directory.Exists(path)) throw new EmbedderException($"{flag} {path}: is a folder; expected a file name");
        CheckCreatable(path, flag, Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary><paramref name="folder"/> exists and takes new entries, or its nearest existing ancestor does (and it is a folder).</summary>
    private static void CheckCreatable(string path, string flag, string folder)
    {
        for (var dir = folder; !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(dir)) throw new EmbedderException($"{flag} {path}: cannot be made, {dir} is a file, not a folder");
            if (!Directory.Exists(dir)) continue;
            if (Posix.CannotCreateIn(dir) is { } why)
                throw new EmbedderException($"cannot write {path}: {why}{(dir == folder ? "" : $" (in {dir})")}");
            return;
        }
    }
}
