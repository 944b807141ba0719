using System.Runtime.CompilerServices;

namespace LlmEmbedder.Tests;

/// <summary>
/// Prints the processor, core count and torch thread count once when the test assembly loads. Comparisons with
/// PyTorch and ONNX Runtime depend on the CPU's kernels and on thread counts, so a failure report has to say which
/// machine it came from. Console output of the test host shows at ./test.sh's "normal" verbosity (not at minimal).
/// </summary>
internal static class TestMachine
{
    [ModuleInitializer]
    internal static void Print()
    {
        string threads;
        try
        {
            threads = TorchSharp.torch.get_num_threads().ToString();
        }
        catch (Exception e) // a libtorch that fails to load is for the tests that use it to report, not every test
        {
            threads = $"unavailable ({e.GetBaseException().Message})";
        }
        var omp = Environment.GetEnvironmentVariable("OMP_NUM_THREADS");
        Console.WriteLine($"Test machine: CPU {CpuModel()}; {Environment.ProcessorCount} cores; torch threads {threads}"
            + (omp is null ? "" : $" (OMP_NUM_THREADS={omp})"));
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? "unknown (no \"model name\" in /proc/cpuinfo)" : line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException e)
        {
            return $"unknown ({e.Message})";
        }
    }
}
