using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit.Abstractions;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Eval;
using LlmEmbedder.Tests.Reference;

namespace LlmEmbedder.Tests.Mining;

/// <summary>
/// `mine --relative_margin` / `--absolute_margin` on snowflake-arctic-embed-xs with a pool seeded with near-duplicates
/// of every positive (the false negatives the margins exist for), against a NumPy re-implementation of
/// sentence-transformers' rule (tests/reference/margin_mining_reference.py) on the embeddings `encode` writes: the
/// counts of each rule are the reference's, every near-duplicate is removed, and no mined negative scores above the
/// margin while the candidates below it stay.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed partial class MineMarginsCompareToNumpyTests(ITestOutputHelper output) : IDisposable
{
    private const int RangeStart = 0, RangeEnd = 30, NegativeNumber = 5;
    private static readonly string[] SpecFlags = ["--version", "llm-embedder", "--task", "qa"];
    private readonly string dir = TestPaths.NewTempDir("mine-margins");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Theory]
    [InlineData(null, 0.05)]
    [InlineData(0.02, 0.05)]
    [InlineData(0.1, null)]
    public void CountsMatchTheNumpyRuleAndEveryNearDuplicateIsRemoved(double? absolute, double? relative)
    {
        var model = PretrainedOnnxModels.ArcticXs.HuggingFaceDir;
        var queries = SmallEnglishRetrievalSet.Queries;
        var positives = queries.Select(q => q.Relevant.Select(SmallEnglishRetrievalSet.KeyText).ToArray()).ToArray();
        var nearDuplicates = queries.Select(q => q.Relevant.SelectMany(p => NearDuplicates(p)).ToArray()).ToArray();
        var poolTexts = Enumerable.Range(0, SmallEnglishRetrievalSet.Passages.Length).Select(SmallEnglishRetrievalSet.KeyText)
            .Concat(nearDuplicates.SelectMany(d => d)).Distinct().ToArray();
        var input = Path.Combine(dir, "train.jsonl");
        File.WriteAllLines(input, queries.Select((q, i) => JsonSerializer.Serialize(new { query = q.Query, pos = positives[i], neg = Array.Empty<string>(), task = "qa" })));
        var pool = Path.Combine(dir, "pool.jsonl");
        File.WriteAllLines(pool, poolTexts.Select(t => JsonSerializer.Serialize(new { text = t })));

        var minedFile = Path.Combine(dir, "mined.jsonl");
        string[] margins = [.. absolute is { } a ? new[] { "--absolute_margin", Invariant(a) } : [], .. relative is { } r ? new[] { "--relative_margin", Invariant(r) } : []];
        var mine = CliProcess.Run(["mine", "--model", model, "--input_file", input, "--candidate_pool", pool, "--output_file", minedFile, "--no_cache",
            "--range_for_sampling", $"{RangeStart}-{RangeEnd}", "--negative_number", $"{NegativeNumber}", .. SpecFlags, .. margins]);
        Assert.True(mine.ExitCode == 0, mine.Stderr);
        Assert.Contains("0 rows topped up", mine.Stderr);

        var positiveTexts = positives.SelectMany(p => p).Distinct().ToArray();
        var request = new JsonObject
        {
            ["range"] = new JsonArray(RangeStart, RangeEnd),
            ["absolute_margin"] = absolute,
            ["relative_margin"] = relative,
            ["pool_texts"] = new JsonArray(poolTexts.Select(t => (JsonNode)t).ToArray()),
            ["rows"] = new JsonArray(queries.Select((q, i) => (JsonNode)new JsonObject
            {
                ["query"] = q.Query,
                ["positives"] = new JsonArray(positives[i].Select(t => (JsonNode)t).ToArray()),
                ["positive_rows"] = new JsonArray(positives[i].Select(t => (JsonNode)Array.IndexOf(positiveTexts, t)).ToArray()),
            }).ToArray()),
        };
        var requestPath = Path.Combine(dir, "request.json");
        File.WriteAllText(requestPath, request.ToJsonString());
        var reference = JsonNode.Parse(ReferencePython.Run("margin_mining_reference.py",
            Encode(model, "query", queries.Select(q => q.Query).ToArray()), Encode(model, "key", poolTexts), Encode(model, "key", positiveTexts), requestPath))!;

        var summary = MarginLine().Match(mine.Stderr);
        Assert.True(summary.Success, mine.Stderr);
        output.WriteLine($"{summary.Value}\nreference: {reference["candidates"]} candidates, absolute {reference["absolute"]}, relative {reference["relative"]}");
        Assert.Equal(reference["candidates"]!.GetValue<int>(), int.Parse(summary.Groups["candidates"].Value, CultureInfo.InvariantCulture));
        if (absolute is not null) Assert.Contains($"--absolute_margin {Invariant(absolute.Value)} removed {reference["absolute"]!.GetValue<int>()}", summary.Value);
        if (relative is not null) Assert.Contains($"--relative_margin {Invariant(relative.Value)} removed {reference["relative"]!.GetValue<int>()}", summary.Value);

        var mined = File.ReadAllLines(minedFile).Select(line => JsonNode.Parse(line)!["neg"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray()).ToArray();
        int nearDuplicatesRemoved = 0, keptCandidates = 0;
        for (int q = 0; q < queries.Length; q++)
        {
            var row = reference["rows"]![q]!;
            var removed = row["removed"]!.AsArray().Select(t => t!.GetValue<string>()).ToHashSet();
            var kept = row["kept"]!.AsArray().Select(t => t!.GetValue<string>()).ToHashSet();
            double threshold = row["threshold"]!.GetValue<double>();
            foreach (var duplicate in nearDuplicates[q])
            {
                Assert.True(removed.Contains(duplicate), $"query {q}: near-duplicate '{duplicate}' was not removed (kept: {kept.Contains(duplicate)})");
                nearDuplicatesRemoved++;
            }
            Assert.Equal(NegativeNumber, mined[q].Length);
            foreach (var negative in mined[q])
            {
                Assert.DoesNotContain(negative, nearDuplicates[q]);
                Assert.True(kept.Contains(negative), $"query {q}: '{negative}' was mined but is not a kept candidate of the reference");
                Assert.True(row["scores"]![negative]!.GetValue<double>() <= threshold + 1e-6, $"query {q}: '{negative}' scores above the margin");
            }
            keptCandidates += kept.Count;
        }
        Assert.True(nearDuplicatesRemoved >= 40, $"only {nearDuplicatesRemoved} near-duplicates");
        // The rule does not empty the range: most true negatives sit below the margin and stay candidates.
        Assert.True(keptCandidates >= queries.Length * NegativeNumber, $"{keptCandidates} candidates kept");
    }

    /// <summary>Two near-copies of a passage's key text: a full stop after the title, and the text's final full stop dropped.</summary>
    private static string[] NearDuplicates(int passage)
    {
        var (title, text) = SmallEnglishRetrievalSet.Passages[passage];
        return [$"{title}. {text}", $"{title} {text.TrimEnd('.')}"];
    }

    private string Encode(string model, string role, string[] texts)
    {
        var input = Path.Combine(dir, $"{role}-{texts.Length}.txt");
        File.WriteAllLines(input, texts);
        var output = Path.ChangeExtension(input, ".npy");
        var result = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, "--role", role, .. SpecFlags]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return output;
    }

    private static string Invariant(double value) => value.ToString(CultureInfo.InvariantCulture);

    [GeneratedRegex(@"margins \(the model's similarity, against each row's lowest positive score\): .* of (?<candidates>\d+) candidates in range")]
    private static partial Regex MarginLine();
}
