using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests;

/// <summary>
/// The embedded default (`llm-embedder train` with no flags: a small Chinese BERT fine-tuned on samples/ for two
/// tasks with instructions and mean pooling), trained once per test run on first use, for the heavy tests that need
/// a real trained model.
/// </summary>
public sealed class TrainedEmbeddedDefault : IDisposable
{
    private readonly Lazy<string> runFolder;

    public TrainedEmbeddedDefault()
    {
        WorkingDirectory = TestPaths.NewTempDir("embedded-default");
        runFolder = new Lazy<string>(Train, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Where `train` ran: the run is outputs/llm-embedder-default under it.</summary>
    public string WorkingDirectory { get; }

    /// <summary>The training's output_dir (trains now if no test has needed it yet).</summary>
    public string RunFolder => runFolder.Value;

    public void Dispose() => Directory.Delete(WorkingDirectory, recursive: true);

    private string Train()
    {
        var trained = CliProcess.Run(["train"], workingDirectory: WorkingDirectory);
        if (trained.ExitCode != 0) throw new InvalidOperationException($"llm-embedder train failed ({trained.ExitCode}): {trained.Stderr}{trained.Stdout}");
        return Path.Combine(WorkingDirectory, "outputs", "llm-embedder-default");
    }
}
