using System.Text.RegularExpressions;

namespace LlmEmbedder;

/// <summary>
/// A file-system failure (.NET's IOException family) as one line in our words that names the path, such as
/// "cannot write out/metrics.json: permission denied" or "no space left on device while writing out/metrics.json", in
/// place of .NET's message.
/// </summary>
public static partial class FileSystemErrors
{
    // errno values, which .NET on Linux puts in HResult of an IOException it has no subclass for.
    private const int FileExists = 17, NotAFolder = 20, IsAFolder = 21, FileTooLarge = 27, NoSpace = 28, ReadOnlyFileSystem = 30,
        FolderNotEmpty = 39, QuotaExceeded = 122, InUse = 11;

    // COR_E_IO: what Directory.Move throws when its destination exists.
    private const int GenericIOError = unchecked((int)0x80131620);

    /// <param name="path">The path the caller was working on; default: the one .NET's message quotes.</param>
    /// <param name="writing">The caller was writing <paramref name="path"/>: the line reads "cannot write {path}: ...".</param>
    /// <returns>null when <paramref name="e"/> is not a file-system failure or no path is known.</returns>
    public static string? Describe(Exception e, string? path = null, bool writing = false)
    {
        if (e is not (IOException or UnauthorizedAccessException)) return null;
        path ??= (e as FileNotFoundException)?.FileName ?? QuotedPath(e.Message);
        if (path is null) return null;
        // A full disk is the fault people meet mid-training: said the way they search for it.
        if (e is IOException && e.HResult == NoSpace) return $"no space left on device while writing {path}";
        var (reason, onlyWhenWriting) = Reason(e, path);
        return writing || onlyWhenWriting ? $"cannot write {path}: {reason}" : $"{path}: {reason}";
    }

    /// <summary>What went wrong, and whether only a write can go wrong that way (then the line says "cannot write").</summary>
    private static (string Reason, bool OnlyWhenWriting) Reason(Exception e, string path) => e switch
    {
        FileNotFoundException => ("file not found", false),
        DirectoryNotFoundException => (FileInTheWay(path) is { } file ? $"{file} is a file, not a folder" : "its folder does not exist", false),
        UnauthorizedAccessException => (Directory.Exists(path) ? "is a folder, not a file" : "permission denied", false),
        PathTooLongException => ("the path is too long", false),
        _ => e.HResult switch
        {
            NoSpace => ("no space left on device", true),
            QuotaExceeded => ("disk quota exceeded", true),
            ReadOnlyFileSystem => ("read-only file system", true),
            FileTooLarge => ("file too large", true),
            IsAFolder => ("is a folder, not a file", false),
            NotAFolder => (FileInTheWay(path) is { } file ? $"{file} is a file, not a folder" : "a part of the path is a file, not a folder", false),
            FolderNotEmpty => ("the folder is not empty", true),
            InUse => ("in use by another process", false),
            FileExists => (AlreadyThere(path), true),
            GenericIOError when File.Exists(path) || Directory.Exists(path) => (AlreadyThere(path), true),
            _ => (OwnWords(e.Message), false),
        },
    };

    private static string AlreadyThere(string path) => Directory.Exists(path) ? "a folder of that name is in the way" : "a file of that name is in the way";

    /// <summary>The nearest existing ancestor of <paramref name="path"/> when it is a file, which no folder can be made under.</summary>
    public static string? FileInTheWay(string path)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(path)); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if (File.Exists(dir)) return dir;
            if (Directory.Exists(dir)) return null;
        }
        return null;
    }

    /// <summary>.NET's generic wording "Input/output error : '/p'" without the path: "input/output error".</summary>
    private static string OwnWords(string message)
    {
        var text = message.Split(" : '", 2)[0].TrimEnd('.');
        return text.Length > 0 ? char.ToLowerInvariant(text[0]) + text[1..] : text;
    }

    private static string? QuotedPath(string message) => QuotedPathPattern().Match(message) is { Success: true } match ? match.Groups[1].Value : null;

    // .NET quotes the path once: "Access to the path '/p' is denied.", "No space left on device : '/p'".
    [GeneratedRegex("'(.+)'")]
    private static partial Regex QuotedPathPattern();
}
