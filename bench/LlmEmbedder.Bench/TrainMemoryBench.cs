using System.Diagnostics;
using System.Text.RegularExpressions;

namespace LlmEmbedder.Bench;

/// <summary>
/// Peak RSS of one training step against the batch size, with and without gradient caching: each point is a fresh
/// train-step process (peak RSS only grows within a process), one untimed step. Speed is not measured here, so the
/// machine's load does not matter. Flags: --config PATH --batches 16,32,64 --plain-batches 16,32 --mini-batch-size 8
/// and any train-step flag (--group, --query-len, --key-len, --dtype, --gradient-checkpointing, --threads).
/// </summary>
public static partial class TrainMemoryBench
{
    public static void Run(string[] args)
    {
        string Flag(string name, string fallback) => BenchArgs.Flag(args, name, fallback);
        var own = new[] { "--batches", "--plain-batches", "--mini-batch-size" };
        var passed = args.Where((a, i) => !own.Contains(a) && (i == 0 || !own.Contains(args[i - 1]))).ToArray();
        var chunk = Flag("--mini-batch-size", "8");
        var points = Flag("--batches", "16,32,64").Split(',').Select(b => (Batch: b, Chunk: (string?)chunk))
            .Concat(Flag("--plain-batches", "16,32").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(b => (Batch: b, Chunk: (string?)null)));
        Console.WriteLine($"CPU {BenchArgs.CpuModel()}; allocator {BenchArgs.Allocator()} (each point runs under it); load average {BenchArgs.LoadAverage()}");
        Console.WriteLine("| per_device_train_batch_size | mini_batch_size | peak RSS | estimated |");
        Console.WriteLine("|---|---|---|---|");
        foreach (var (batch, miniBatch) in points)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
            string[] childArgs = [typeof(TrainMemoryBench).Assembly.Location, "train-step", .. passed, "--batch", batch, "--steps", "1", "--warmup", "0",
                .. miniBatch is null ? Array.Empty<string>() : ["--mini-batch-size", miniBatch]];
            foreach (var arg in childArgs)
                start.ArgumentList.Add(arg);
            using var child = Process.Start(start)!;
            var output = child.StandardOutput.ReadToEnd();
            child.WaitForExit();
            var match = PeakLine().Match(output);
            Console.WriteLine(match.Success
                ? $"| {batch} | {miniBatch ?? "-"} | {match.Groups[1].Value} MiB | {match.Groups[2].Value} MiB |"
                : $"| {batch} | {miniBatch ?? "-"} | failed (exit {child.ExitCode}) | |");
        }
    }

    [GeneratedRegex(@"peak RSS (\d+) MiB \(estimated (\d+) MiB\)")]
    private static partial Regex PeakLine();
}
