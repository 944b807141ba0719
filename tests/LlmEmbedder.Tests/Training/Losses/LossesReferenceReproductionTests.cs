using System.Diagnostics;
using System.Text.Json;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// Re-runs tests/reference/losses_reference.py with Debian's PyTorch and checks it still produces the
/// committed losses_reference.json, so the reference values cannot drift from the script that
/// documents them. Needs /usr/bin/python3 with torch and numpy (apt-get install python3-torch).
/// </summary>
public sealed class LossesReferenceReproductionTests
{
    private const string Python = "/usr/bin/python3";

    /// <summary>Same machine: bit-identical; another CPU may round the last float32 bit differently.</summary>
    private const double ReproductionTolerance = 1e-6;

    [Fact]
    public void CommittedJsonIsReproducedByThePyTorchScript()
    {
        RequirePyTorch();
        var dir = TestPaths.NewTempDir("losses-ref");
        var regenerated = Path.Combine(dir, LossesReference.FileName);

        var (exitCode, stdout, stderr) = Run(Python, LossesReference.ScriptPath, "--out", regenerated);
        Assert.True(exitCode == 0, $"{LossesReference.ScriptPath} failed ({exitCode}):\n{stdout}\n{stderr}");

        using var fresh = JsonDocument.Parse(File.ReadAllText(regenerated));
        var differences = new List<string>();
        Compare("$", LossesReference.Root, fresh.RootElement, differences);
        Assert.True(differences.Count == 0,
            $"{LossesReference.CommittedPath} is not what the script produces now ({differences.Count} differences; "
            + $"regenerate with `{Python} tests/reference/losses_reference.py` and review):\n" + string.Join("\n", differences.Take(20)));
        Directory.Delete(dir, recursive: true);
    }

    private static void RequirePyTorch()
    {
        if (!File.Exists(Python))
            Assert.Fail($"{Python} not found: this test needs Debian's python3 with PyTorch (apt-get install python3-torch python3-numpy)");
        var (exitCode, _, stderr) = Run(Python, "-c", "import torch, numpy");
        if (exitCode != 0)
            Assert.Fail($"{Python} cannot import torch and numpy (apt-get install python3-torch python3-numpy): {stderr.Trim()}");
    }

    private static void Compare(string path, JsonElement committed, JsonElement fresh, List<string> differences)
    {
        if (path == "$.torch_version")
            return; // informational: another build of torch that gives the same numbers is fine
        if (committed.ValueKind != fresh.ValueKind)
        {
            differences.Add($"{path}: {committed.ValueKind} vs {fresh.ValueKind}");
            return;
        }
        switch (committed.ValueKind)
        {
            case JsonValueKind.Object:
                var committedNames = committed.EnumerateObject().Select(p => p.Name).ToArray();
                var freshNames = fresh.EnumerateObject().Select(p => p.Name).ToArray();
                if (!committedNames.SequenceEqual(freshNames))
                    differences.Add($"{path}: keys [{string.Join(", ", committedNames)}] vs [{string.Join(", ", freshNames)}]");
                else
                    foreach (var property in committed.EnumerateObject())
                        Compare($"{path}.{property.Name}", property.Value, fresh.GetProperty(property.Name), differences);
                break;
            case JsonValueKind.Array:
                if (committed.GetArrayLength() != fresh.GetArrayLength())
                    differences.Add($"{path}: length {committed.GetArrayLength()} vs {fresh.GetArrayLength()}");
                else
                    for (var i = 0; i < committed.GetArrayLength(); i++)
                        Compare($"{path}[{i}]", committed[i], fresh[i], differences);
                break;
            case JsonValueKind.Number:
                var (a, b) = (committed.GetDouble(), fresh.GetDouble());
                if (LossesReference.Error(b, a) > ReproductionTolerance)
                    differences.Add($"{path}: {a} vs {b}");
                break;
            default:
                if (committed.GetRawText() != fresh.GetRawText())
                    differences.Add($"{path}: {committed.GetRawText()} vs {fresh.GetRawText()}");
                break;
        }
    }

    private static (int ExitCode, string Stdout, string Stderr) Run(string fileName, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = TestPaths.RepoRoot,
        };
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{fileName} {string.Join(' ', arguments)} did not finish within 2 minutes");
        }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }
}
