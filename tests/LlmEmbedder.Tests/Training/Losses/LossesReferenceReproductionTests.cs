using System.Text.Json;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// Re-runs tests/reference/losses_reference.py with Debian's PyTorch and checks it still produces the
/// committed losses_reference.json, so the reference values cannot drift from the script that
/// documents them. Needs /usr/bin/python3 with torch and numpy (apt-get install python3-torch).
/// </summary>
public sealed class LossesReferenceReproductionTests
{
    /// <summary>Same machine: bit-identical; another CPU may round the last float32 bit differently.</summary>
    private const double ReproductionTolerance = 1e-6;

    [Fact]
    public void CommittedJsonIsReproducedByThePyTorchScript()
    {
        var dir = TestPaths.NewTempDir("losses-ref");
        var regenerated = Path.Combine(dir, LossesReference.FileName);
        ReferencePython.Run(Path.GetFileName(LossesReference.ScriptPath), "--out", regenerated);

        using var fresh = JsonDocument.Parse(File.ReadAllText(regenerated));
        var differences = new List<string>();
        Compare("$", LossesReference.Root, fresh.RootElement, differences);
        Assert.True(differences.Count == 0,
            $"{LossesReference.CommittedPath} is not what the script produces now ({differences.Count} differences; "
            + $"regenerate with `/usr/bin/python3 tests/reference/losses_reference.py` and review):\n" + string.Join("\n", differences.Take(20)));
        Directory.Delete(dir, recursive: true);
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
}
