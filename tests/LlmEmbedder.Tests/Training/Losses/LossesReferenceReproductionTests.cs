using System.Text.Json;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// Re-runs tests/reference/losses_reference.py with Debian's PyTorch and checks it still produces the
/// committed losses_reference.json, so the reference values cannot drift from the script that
/// documents them. Needs /usr/bin/python3 with torch and numpy (apt-get install python3-torch).
/// </summary>
public sealed class LossesReferenceReproductionTests(ITestOutputHelper output)
{
    /// <summary>
    /// Allowed |fresh − committed|, as a fraction of the largest magnitude in the same tensor (at least 1).
    /// PyTorch's CPU kernels differ between processors (SIMD width decides the summation order, exp/log are
    /// vectorised differently), so a fresh run elsewhere is not bit-identical. Those rounding differences scale
    /// with the largest terms being summed, not with each result: a gradient component that nearly cancels
    /// (0.07 in a tensor reaching 11) moved by 2e-6, which no per-value tolerance of 1e-6 absolute plus 1e-5
    /// relative allows. A sum of n float32 terms is off by at most about n·2⁻²³ of their magnitude; with
    /// n ≤ 24 (the global batch of keys) and both runs erring, that is ~3e-6 of the tensor's scale. Measured
    /// between two processors: at most 4.5e-7 of the scale (4.6e-6 on one gradient component of magnitude 1).
    /// Still tight enough to fail on a change of 1e-3 anywhere: no tensor here exceeds ~90 (cosine / 0.01).
    /// </summary>
    internal const double ReproductionTolerance = 5e-6;

    [Fact]
    public void CommittedJsonIsReproducedByThePyTorchScript()
    {
        var dir = TestPaths.NewTempDir("losses-ref");
        var regenerated = Path.Combine(dir, LossesReference.FileName);
        ReferencePython.Run(Path.GetFileName(LossesReference.ScriptPath), "--out", regenerated);

        using var fresh = JsonDocument.Parse(File.ReadAllText(regenerated));
        var comparison = new Comparison();
        comparison.Compare("$", LossesReference.Root, fresh.RootElement);
        output.WriteLine($"worst difference: {comparison.Worst}");
        Assert.True(comparison.Differences.Count == 0,
            $"{LossesReference.CommittedPath} is not what the script produces now ({comparison.Differences.Count} differences "
            + $"beyond {ReproductionTolerance:E0} of their tensor's scale; worst {comparison.Worst}; regenerate with "
            + "`/usr/bin/python3 tests/reference/losses_reference.py` and review):\n" + string.Join("\n", comparison.Differences.Take(20)));
        Directory.Delete(dir, recursive: true);
    }

    /// <summary>Walks both documents in step; numbers are compared a tensor (a numeric array, nested or not) at a time.</summary>
    private sealed class Comparison
    {
        public List<string> Differences { get; } = [];

        /// <summary>The largest |fresh − committed| / scale seen, with where it was.</summary>
        public string Worst { get; private set; } = "none (bit-identical)";

        private double worstRatio;

        public void Compare(string path, JsonElement committed, JsonElement fresh)
        {
            if (path == "$.torch_version")
                return; // informational: another build of torch that gives the same numbers is fine
            if (committed.ValueKind != fresh.ValueKind)
            {
                Differences.Add($"{path}: {committed.ValueKind} vs {fresh.ValueKind}");
                return;
            }
            switch (committed.ValueKind)
            {
                case JsonValueKind.Object:
                    var committedNames = committed.EnumerateObject().Select(p => p.Name).ToArray();
                    var freshNames = fresh.EnumerateObject().Select(p => p.Name).ToArray();
                    if (!committedNames.SequenceEqual(freshNames))
                        Differences.Add($"{path}: keys [{string.Join(", ", committedNames)}] vs [{string.Join(", ", freshNames)}]");
                    else
                        foreach (var property in committed.EnumerateObject())
                            Compare($"{path}.{property.Name}", property.Value, fresh.GetProperty(property.Name));
                    break;
                case JsonValueKind.Array when IsTensor(committed):
                    var scale = Math.Max(1.0, MaxMagnitude(committed));
                    CompareTensor(path, committed, fresh, scale);
                    break;
                case JsonValueKind.Array:
                    if (committed.GetArrayLength() != fresh.GetArrayLength())
                        Differences.Add($"{path}: length {committed.GetArrayLength()} vs {fresh.GetArrayLength()}");
                    else
                        for (var i = 0; i < committed.GetArrayLength(); i++)
                            Compare($"{path}[{i}]", committed[i], fresh[i]);
                    break;
                case JsonValueKind.Number:
                    CompareNumber(path, committed.GetDouble(), fresh.GetDouble(), Math.Max(1.0, Math.Abs(committed.GetDouble())));
                    break;
                default:
                    if (committed.GetRawText() != fresh.GetRawText())
                        Differences.Add($"{path}: {committed.GetRawText()} vs {fresh.GetRawText()}");
                    break;
            }
        }

        private void CompareTensor(string path, JsonElement committed, JsonElement fresh, double scale)
        {
            if (fresh.ValueKind != committed.ValueKind)
                Differences.Add($"{path}: {committed.ValueKind} vs {fresh.ValueKind}");
            else if (committed.ValueKind == JsonValueKind.Number)
                CompareNumber(path, committed.GetDouble(), fresh.GetDouble(), scale);
            else if (committed.GetArrayLength() != fresh.GetArrayLength())
                Differences.Add($"{path}: length {committed.GetArrayLength()} vs {fresh.GetArrayLength()}");
            else
                for (var i = 0; i < committed.GetArrayLength(); i++)
                    CompareTensor($"{path}[{i}]", committed[i], fresh[i], scale);
        }

        private void CompareNumber(string path, double committed, double fresh, double scale)
        {
            var ratio = Math.Abs(fresh - committed) / scale;
            var line = $"{path}: {committed:R} vs {fresh:R} (|difference| {Math.Abs(fresh - committed):E2} = {ratio:E2} of scale {scale:G4})";
            if (ratio > worstRatio)
                (worstRatio, Worst) = (ratio, line);
            if (!(ratio <= ReproductionTolerance)) // also catches NaN
                Differences.Add(line);
        }

        private static bool IsTensor(JsonElement array) =>
            array.GetArrayLength() > 0 && array.EnumerateArray().All(e =>
                e.ValueKind == JsonValueKind.Number || (e.ValueKind == JsonValueKind.Array && IsTensor(e)));

        private static double MaxMagnitude(JsonElement element) => element.ValueKind == JsonValueKind.Number
            ? Math.Abs(element.GetDouble())
            : element.EnumerateArray().Select(MaxMagnitude).DefaultIfEmpty(0).Max();
    }
}
