using System.Globalization;

namespace LlmEmbedder.Bench;

/// <summary>Flags of the form <c>--name value</c>, and the machine facts every benchmark prints beside its numbers.</summary>
internal static class BenchArgs
{
    public static string Flag(string[] args, string name, string fallback) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault() ?? fallback;

    public static int Flag(string[] args, string name, int fallback)
    {
        var value = args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        return value is null ? fallback : int.Parse(value, CultureInfo.InvariantCulture);
    }

    /// <summary>The 1, 5 and 15 minute load averages.</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    /// <summary>The processor's name as lscpu gives it ("model name" in /proc/cpuinfo).</summary>
    public static string CpuModel() =>
        File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?"
            : "?";

    /// <summary>Whether jemalloc is loaded into this process (bench/run and ./llm-embedder preload it).</summary>
    public static bool JemallocPreloaded() =>
        File.Exists("/proc/self/maps") && File.ReadLines("/proc/self/maps").Any(l => l.Contains("libjemalloc", StringComparison.Ordinal));

    /// <summary>The allocator this process runs under, as the benchmarks print it.</summary>
    public static string Allocator() => JemallocPreloaded() ? "jemalloc" : "glibc malloc";
}
