using System.Diagnostics;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Tests.Cli;

/// <summary>Runs the real llm-embedder CLI (built beside the tests) as a separate process.</summary>
internal static class CliProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static Result Run(IEnumerable<string> args, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "llm-embedder.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null) process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromMinutes(15)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("llm-embedder did not finish within 15 minutes");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A tiny random-weight BERT folder with the real Chinese vocabulary (1 layer, hidden 32).</summary>
    public static string TinyChineseModel(string parent)
    {
        var configPath = Path.Combine(parent, "tiny-config.json");
        File.WriteAllText(configPath, """
            {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 21128, "hidden_size": 32,
             "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512}
            """);
        var dir = Path.Combine(parent, "tiny-model");
        RandomModelFolder.Create(configPath, TestPaths.ChineseVocabDir, dir, seed: 1);
        return dir;
    }
}
