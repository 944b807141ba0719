namespace LlmEmbedder.Tests;

/// <summary>Where the repository, the shared fixtures and a per-test scratch folder are.</summary>
internal static class TestPaths
{
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>
    /// tests/fixtures: a committed copy of the project's shared fixtures (the real bert-base-chinese vocab and the
    /// bge-*-zh-v1.5 configs), so a clone tests the same way wherever it is checked out.
    /// </summary>
    public static string SharedFixtures { get; } = Path.Combine(RepoRoot, "tests", "fixtures");

    public static string ChineseVocabDir => Path.Combine(SharedFixtures, "bert-base-chinese");

    public static string Fixture(params string[] parts) => Path.Combine([SharedFixtures, .. parts]);

    /// <summary>
    /// The built <paramref name="assembly"/>.dll of the project in <paramref name="projectDir"/> (relative to the
    /// repository), in the configuration and framework the tests were built in (bin/Release/net10.0).
    /// </summary>
    public static string BuiltAssembly(string projectDir, string assembly)
    {
        var testsBin = Path.Combine(RepoRoot, "tests", "LlmEmbedder.Tests", "bin");
        var configurationAndFramework = Path.GetRelativePath(testsBin, AppContext.BaseDirectory);
        var path = Path.Combine(RepoRoot, projectDir, "bin", configurationAndFramework, assembly + ".dll");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} is not built: build LlmEmbedder.slnx in the tests' configuration", path);
        return path;
    }

    /// <summary>A fresh empty folder under the system temp dir; callers delete it when done (or leave it for debugging).</summary>
    public static string NewTempDir(string label)
    {
        var dir = Path.Combine(Path.GetTempPath(), "llm-embedder-tests", $"{label}-{Guid.NewGuid():N}"[..Math.Min(label.Length + 13, 60)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "LlmEmbedder.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("repository root (LlmEmbedder.slnx) not found above " + AppContext.BaseDirectory);
    }
}
