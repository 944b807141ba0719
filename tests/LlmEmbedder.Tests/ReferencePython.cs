using System.Diagnostics;

namespace LlmEmbedder.Tests;

/// <summary>
/// Runs a committed script of tests/reference/ with Debian's /usr/bin/python3 (which has python3-torch and numpy;
/// the python3 on PATH may not). A missing interpreter or package fails the test: it is a reference, not optional.
/// </summary>
internal static class ReferencePython
{
    private const string Interpreter = "/usr/bin/python3";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>Runs the script and returns its stdout; fails the test with its stderr when it exits non-zero.</summary>
    public static string Run(string script, params string[] arguments)
    {
        if (!File.Exists(Interpreter))
            Assert.Fail($"{Interpreter} not found: this test compares with PyTorch/numpy there (apt-get install python3-torch python3-numpy)");
        var scriptPath = Path.Combine(TestPaths.RepoRoot, "tests", "reference", script);
        var start = new ProcessStartInfo(Interpreter)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(scriptPath);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["OMP_NUM_THREADS"] = "1";
        start.Environment["PYTHONDONTWRITEBYTECODE"] = "1";

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{script} did not finish within {Timeout.TotalSeconds} s");
        }
        if (process.ExitCode != 0)
            Assert.Fail($"{Interpreter} {script} failed (exit {process.ExitCode}): {stderr.Result.Trim()}");
        return stdout.Result;
    }
}
