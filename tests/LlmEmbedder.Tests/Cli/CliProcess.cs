using System.Diagnostics;
using System.Text;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Tests.Cli;

/// <summary>Runs the real llm-embedder CLI (built beside the tests) as a separate process.</summary>
internal static class CliProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <param name="stdinBytes">Raw bytes for stdin (for input in other encodings), instead of <paramref name="stdin"/>.</param>
    /// <param name="workingDirectory">Where relative paths (and defaults such as data/outputs/) land; null: the test's own.</param>
    /// <param name="program">Another built .dll to run instead of the CLI (a sample program).</param>
    public static Result Run(IEnumerable<string> args, string? stdin = null, IReadOnlyDictionary<string, string>? environment = null,
        byte[]? stdinBytes = null, string? workingDirectory = null, string? program = null)
    {
        using var running = Start(args, environment, workingDirectory, program);
        if (stdin is not null) running.Process.StandardInput.Write(stdin);
        if (stdinBytes is not null) running.Process.StandardInput.BaseStream.Write(stdinBytes);
        return running.Wait(TimeSpan.FromMinutes(15));
    }

    /// <summary>Starts the CLI without waiting for it (for runs that must overlap); stdin stays open until <see cref="Running.Wait"/>.</summary>
    public static Running Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null, string? workingDirectory = null,
        string? program = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        start.ArgumentList.Add(program ?? Path.Combine(AppContext.BaseDirectory, "llm-embedder.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        return new Running(Process.Start(start)!);
    }

    /// <summary>A started CLI process; its output is collected as it comes, so it never blocks on a full pipe.</summary>
    public sealed class Running : IDisposable
    {
        private readonly Task<string> stdout;
        private readonly Task<string> stderr;
        private readonly StringBuilder stderrSoFar = new();

        public Running(Process process)
        {
            Process = process;
            stdout = process.StandardOutput.ReadToEndAsync();
            stderr = Collect(process.StandardError);
        }

        public Process Process { get; }

        /// <summary>What the process has written to stderr so far (it keeps running).</summary>
        public string StderrSoFar
        {
            get
            {
                lock (stderrSoFar) return stderrSoFar.ToString();
            }
        }

        /// <summary>Waits until stderr so far satisfies <paramref name="seen"/> (a server's "listening on" line), and returns it.</summary>
        public string WaitForStderr(Func<string, bool> seen, TimeSpan timeout)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                var text = StderrSoFar;
                if (seen(text)) return text;
                if (Process.HasExited)
                {
                    stderr.Wait(TimeSpan.FromSeconds(5));
                    text = StderrSoFar;
                    if (seen(text)) return text;
                    throw new InvalidOperationException($"the process exited ({Process.ExitCode}) before the expected output; stderr:\n{text}");
                }
                if (clock.Elapsed > timeout) throw new TimeoutException($"no expected output within {timeout}; stderr:\n{text}");
                Thread.Sleep(50);
            }
        }

        public Result Wait(TimeSpan timeout)
        {
            Process.StandardInput.Close();
            if (!Process.WaitForExit(timeout))
            {
                Process.Kill(entireProcessTree: true);
                throw new TimeoutException($"llm-embedder did not finish within {timeout}");
            }
            return new Result(Process.ExitCode, stdout.Result, stderr.Result);
        }

        public void Dispose() => Process.Dispose();

        /// <summary>Reads all of stderr as it comes, keeping it unchanged (no line-ending rewriting).</summary>
        private async Task<string> Collect(StreamReader reader)
        {
            var buffer = new char[4096];
            int read;
            while ((read = await reader.ReadAsync(buffer)) > 0)
                lock (stderrSoFar) stderrSoFar.Append(buffer, 0, read);
            return StderrSoFar;
        }
    }

    /// <summary>
    /// A tiny random-weight BERT folder with the real Chinese vocabulary (hidden 32, 2 heads), in parent/name.
    /// <paramref name="dropout"/> null keeps BERT's default 0.1; 0 makes ranks and a single process compute the same function.
    /// </summary>
    public static string TinyChineseModel(string parent, int layers = 1, double? dropout = null, int seed = 1, string name = "tiny-model")
    {
        var config = new System.Text.Json.Nodes.JsonObject
        {
            ["architectures"] = new System.Text.Json.Nodes.JsonArray("BertModel"), ["model_type"] = "bert", ["vocab_size"] = 21128,
            ["hidden_size"] = 32, ["num_hidden_layers"] = layers, ["num_attention_heads"] = 2, ["intermediate_size"] = 64,
            ["max_position_embeddings"] = 512,
        };
        if (dropout is { } p)
        {
            config["hidden_dropout_prob"] = p;
            config["attention_probs_dropout_prob"] = p;
        }
        var configPath = Path.Combine(parent, name + "-config.json");
        File.WriteAllText(configPath, config.ToJsonString());
        var dir = Path.Combine(parent, name);
        RandomModelFolder.Create(configPath, TestPaths.ChineseVocabDir, dir, seed);
        return dir;
    }
}
