using LlmEmbedder.Modeling;
using System.Text.Json;
using LlmEmbedder.Training.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// The committed PyTorch reference values (tests/reference/losses_reference.py →
/// losses_reference.json beside this file) and the helpers to compare our tensors with them.
/// </summary>
internal static class LossesReference
{
    public const string FileName = "losses_reference.json";

    /// <summary>
    /// Agreement required with PyTorch: 1e-5, relative once the magnitude exceeds 1 (fp32 has ~7 digits). The committed
    /// values come from one processor and PyTorch on another differs from them by up to 4.6e-6 in this measure (its
    /// kernels round differently per CPU), so this leaves room for that plus our own rounding (measured: 1.5e-6).
    /// </summary>
    public const double Tolerance = 1e-5;

    public static string CommittedPath => Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Training", "Losses", FileName);

    public static string ScriptPath => Path.Combine(TestPaths.RepoRoot, "tests", "reference", "losses_reference.py");

    private static readonly Lazy<JsonDocument> Committed = new(() => JsonDocument.Parse(File.ReadAllText(CommittedPath)));

    public static JsonElement Root => Committed.Value.RootElement;

    public static JsonElement Case(string section, string name)
    {
        var cases = section == "cross_device" ? Root.GetProperty("cross_device").GetProperty("cases") : Root.GetProperty(section);
        foreach (var entry in cases.EnumerateArray())
            if (entry.GetProperty("name").GetString() == name)
                return entry;
        throw new KeyNotFoundException($"{FileName}: no case '{name}' in '{section}'");
    }

    public static TheoryData<string> CaseNames(string section)
    {
        var cases = section == "cross_device" ? Root.GetProperty("cross_device").GetProperty("cases") : Root.GetProperty(section);
        var names = new TheoryData<string>();
        foreach (var entry in cases.EnumerateArray())
            names.Add(entry.GetProperty("name").GetString()!);
        return names;
    }

    public static RetrievalLossOptions Options(JsonElement config) => new()
    {
        DenseMetric = ParseMetric(config.GetProperty("metric").GetString()!),
        CosTemperature = config.GetProperty("cos_temperature").GetDouble(),
        ContrastiveWeight = config.GetProperty("contrastive_weight").GetDouble(),
        DistillWeight = config.GetProperty("distill_weight").GetDouble(),
        TeacherTemperature = config.GetProperty("teacher_temperature").GetDouble(),
        StudentTemperature = config.GetProperty("student_temperature").GetDouble(),
        StableDistill = config.GetProperty("stable_distill").GetBoolean(),
        Matryoshka = config.TryGetProperty("matryoshka", out var matryoshka)
            ? new MatryoshkaOptions(
                [.. matryoshka.GetProperty("dims").EnumerateArray().Select(d => d.GetInt32())],
                [.. matryoshka.GetProperty("weights").EnumerateArray().Select(w => w.GetDouble())])
            : null,
    };

    public static DenseMetric ParseMetric(string metric) => metric switch
    {
        "cos" => DenseMetric.Cos,
        "ip" => DenseMetric.Ip,
        "l2" => DenseMetric.L2,
        _ => throw new ArgumentException($"unknown metric {metric}"),
    };

    /// <summary>A float32 tensor from a JSON matrix (the values are float32 written as doubles, so exact).</summary>
    public static Tensor Matrix(JsonElement rows, bool requiresGrad = false)
    {
        var (values, rowCount, columnCount) = Flatten(rows);
        return tensor(values, [rowCount, columnCount], ScalarType.Float32, requires_grad: requiresGrad);
    }

    public static (float[] Values, long Rows, long Columns) Flatten(JsonElement rows)
    {
        var list = new List<float>();
        long rowCount = 0, columnCount = -1;
        foreach (var row in rows.EnumerateArray())
        {
            var before = list.Count;
            foreach (var value in row.EnumerateArray())
                list.Add((float)value.GetDouble());
            var width = list.Count - before;
            if (columnCount >= 0 && width != columnCount)
                throw new InvalidDataException($"{FileName}: ragged matrix");
            columnCount = width;
            rowCount++;
        }
        return (list.ToArray(), rowCount, columnCount);
    }

    /// <summary>The largest |ours − reference| / max(1, |reference|) over a matrix.</summary>
    public static double MaxError(Tensor ours, JsonElement referenceRows) => MaxErrors(ours, referenceRows).Scaled;

    /// <summary>The largest scaled error (what is asserted) and the largest plain absolute difference (for the log).</summary>
    public static (double Scaled, double Absolute) MaxErrors(Tensor ours, JsonElement referenceRows)
    {
        var (expected, rows, columns) = Flatten(referenceRows);
        Assert.Equal([rows, columns], ours.shape);
        var actual = ours.detach().contiguous().data<float>().ToArray();
        var (scaled, absolute) = (0.0, 0.0);
        for (var i = 0; i < expected.Length; i++)
        {
            scaled = Math.Max(scaled, Error(actual[i], expected[i]));
            absolute = Math.Max(absolute, Math.Abs((double)actual[i] - expected[i]));
        }
        return (scaled, absolute);
    }

    public static double Error(double actual, double expected) =>
        Math.Abs(actual - expected) / Math.Max(1.0, Math.Abs(expected));
}
