using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Distributed;

/// <summary>Runs the real llm-embedder CLI (built beside the tests) under Open MPI's mpirun.</summary>
internal static class MpiRun
{
    /// <summary>
    /// <c>mpirun -np <paramref name="ranks"/> llm-embedder ARGS</c> on this machine; the wall time is returned so tests
    /// can tell an abort from a hang. Fails (never skips) when mpirun is missing.
    /// </summary>
    public static (CliProcess.Result Result, TimeSpan Elapsed) Run(int ranks, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var mpirun = FindMpirun();
        var start = new ProcessStartInfo(mpirun)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        // Two ranks on two cores, as root in containers: no core binding, oversubscription allowed.
        foreach (var arg in new[] { "-np", ranks.ToString(), "--oversubscribe", "--bind-to", "none", "--allow-run-as-root",
                     "dotnet", Path.Combine(AppContext.BaseDirectory, "llm-embedder.dll") })
            start.ArgumentList.Add(arg);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Close();
        var limit = timeout ?? TimeSpan.FromMinutes(5);
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"mpirun -np {ranks} did not finish within {limit} (hung job?)\n{stdout.Result}\n{stderr.Result}");
        }
        return (new CliProcess.Result(process.ExitCode, stdout.Result, stderr.Result), clock.Elapsed);
    }

    private static string FindMpirun()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "mpirun");
            if (File.Exists(candidate)) return candidate;
        }
        Assert.Fail("mpirun not found on PATH: Open MPI is not installed; run build/install-deps.sh");
        throw new InvalidOperationException("unreachable");
    }

}
