namespace LlmEmbedder.Tests.Cli;

/// <summary>
/// File-system failures as one line in our words naming the path, from the exceptions .NET really throws for them
/// (a full device is /dev/full; a folder where a file should go; a file where a folder should go).
/// </summary>
public sealed class FileSystemErrorsTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("fs-errors");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static Exception Thrown(Action action) => Assert.ThrowsAny<Exception>(action);

    [Fact]
    public void FullDevice()
    {
        var e = Thrown(() => File.WriteAllBytes("/dev/full", new byte[64]));
        Assert.Equal("no space left on device while writing /dev/full", FileSystemErrors.Describe(e));
    }

    [Fact]
    public void FolderUnderAFile()
    {
        var file = Path.Combine(dir, "occupied");
        File.WriteAllText(file, "x");
        var target = Path.Combine(file, "sub", "out.json");
        Assert.Equal($"{target}: {file} is a file, not a folder", FileSystemErrors.Describe(Thrown(() => Directory.CreateDirectory(Path.GetDirectoryName(target)!)), target));
        Assert.Equal($"cannot write {target}: {file} is a file, not a folder", FileSystemErrors.Describe(Thrown(() => File.WriteAllText(target, "x")), target, writing: true));
    }

    [Fact]
    public void FolderWhereAFileShouldGo()
    {
        var folder = Path.Combine(dir, "results.jsonl");
        Directory.CreateDirectory(folder);
        Assert.Equal($"{folder}: is a folder, not a file", FileSystemErrors.Describe(Thrown(() => File.WriteAllText(folder, "x"))));
    }

    [Fact]
    public void FileInTheWayOfAFolderBeingMoved()
    {
        var source = Path.Combine(dir, ".incomplete-checkpoint-5");
        Directory.CreateDirectory(source);
        var destination = Path.Combine(dir, "checkpoint-5");
        File.WriteAllText(destination, "not a folder");
        Assert.Equal($"cannot write {destination}: a file of that name is in the way", FileSystemErrors.Describe(Thrown(() => Directory.Move(source, destination))));
    }

    [Fact]
    public void MissingFileAndMissingFolder()
    {
        var missing = Path.Combine(dir, "nope.json");
        Assert.Equal($"{missing}: file not found", FileSystemErrors.Describe(Thrown(() => File.ReadAllText(missing))));
        var inMissingFolder = Path.Combine(dir, "no-folder", "x.json");
        Assert.Equal($"{inMissingFolder}: its folder does not exist", FileSystemErrors.Describe(Thrown(() => File.ReadAllText(inMissingFolder))));
    }

    [Fact]
    public void OtherExceptionsAreNotFileSystemErrors() =>
        Assert.Null(FileSystemErrors.Describe(new InvalidOperationException("Access to the path '/x' is denied.")));

    [Fact]
    public void AtomicWriteNamesTheFileNotItsTemporaryTwin()
    {
        var folder = Path.Combine(dir, "metrics.json");
        Directory.CreateDirectory(folder);
        var error = Assert.Throws<EmbedderException>(() => FileUtil.WriteAllTextAtomic(folder, "{}"));
        Assert.Equal($"cannot write {folder}: is a folder, not a file", error.Message);
        Assert.Empty(Directory.GetFiles(dir, "*.tmp*"));
    }

    /// <summary>
    /// Through the CLI, where only the write itself can fail: sysfs refuses new files even to root (EACCES), and an
    /// access(2) check cannot know that in advance.
    /// </summary>
    [Fact]
    public void PermissionDeniedWhileWritingIsOneLine()
    {
        if (!Directory.Exists("/sys/kernel")) return;
        var model = CliProcess.TinyChineseModel(dir);
        var input = Path.Combine(dir, "input.txt");
        File.WriteAllText(input, "今天星期几\n");
        var output = $"/sys/llm-embedder-test-{Guid.NewGuid():N}.npy";
        var result = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output]);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"llm-embedder: error: cannot write {output}: permission denied", result.StderrLines.Last());
        Assert.DoesNotContain("   at ", result.Stderr);
    }
}
