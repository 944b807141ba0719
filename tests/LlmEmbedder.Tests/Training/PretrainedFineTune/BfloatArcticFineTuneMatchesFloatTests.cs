using System.Diagnostics;
using System.Globalization;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Tests.Reference;
using LlmEmbedder.Training;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Training.PretrainedFineTune;

/// <summary>
/// bf16 compute trains as well as fp32 on real weights: snowflake-arctic-embed-xs fine-tuned on the helpdesk set of
/// <see cref="PretrainedArcticFineTuneImprovesTests"/> with the same settings and seed, once with <c>--dtype fp32</c>
/// and once with <c>--dtype bf16</c> (fp32 master weights, bf16 matmuls), reaches the same held-out MRR@10 within the
/// spread that the choice of seed alone gives the fp32 fine-tune. This is the quality half of the bf16 speed claim in
/// BENCHMARKS.md ("Training step"): the step is faster, and what it trains is as good.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class BfloatArcticFineTuneMatchesFloatTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>
    /// How far bf16's MRR@10 may fall below fp32's. The fp32 fine-tune's own gain moves by 0.09 across seeds 42 and 1–5
    /// (+0.248 to +0.339, <see cref="PretrainedArcticFineTuneImprovesTests"/>): bf16's rounding is a perturbation of
    /// the same kind, so a drop within half of that spread is "equal quality"; a broken bf16 path (gradients lost,
    /// masters not updated) gains nothing and falls 0.25 below. Measured with seed 42: before 0.1884, fp32 0.4361,
    /// bf16 0.4361 (the same ranks at 10 for all 60 queries, from different losses).
    /// </summary>
    private const double Tolerance = 0.045;

    private readonly string dir = TestPaths.NewTempDir("arctic-bf16");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Bf16FineTuneReachesTheHeldOutMrrOfTheFp32FineTune()
    {
        var start = PretrainedOnnxModels.ArcticXs.HuggingFaceDir;
        var (fp32, fp32Seconds) = FineTune(start, "fp32");
        var (bf16, bf16Seconds) = FineTune(start, "bf16");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MRR@10 on 60 held-out queries: before {fp32.MetricsBefore!["mrr@10"]:F4}; fp32 {fp32.MetricsAfter!["mrr@10"]:F4} ({fp32Seconds:F0} s), " +
            $"bf16 {bf16.MetricsAfter!["mrr@10"]:F4} ({bf16Seconds:F0} s)"));
        // The second run really computed in bf16: its losses differ from fp32's beyond float noise.
        var fp32Losses = fp32.LossHistory.Select(p => p.Loss).ToList();
        var bf16Losses = bf16.LossHistory.Select(p => p.Loss).ToList();
        Assert.Equal(fp32Losses.Count, bf16Losses.Count);
        Assert.True(fp32Losses.Zip(bf16Losses).Max(p => Math.Abs(p.First - p.Second)) > 1e-4, "the bf16 run's losses equal the fp32 run's: bf16 was not used");

        double before = fp32.MetricsBefore!["mrr@10"];
        double fp32After = fp32.MetricsAfter!["mrr@10"], bf16After = bf16.MetricsAfter!["mrr@10"];
        Assert.True(fp32After - before >= 0.15, $"the fp32 fine-tune itself did not learn: {before:F4} -> {fp32After:F4}");
        Assert.True(bf16After >= fp32After - Tolerance,
            string.Create(CultureInfo.InvariantCulture, $"bf16 MRR@10 {bf16After:F4} is more than {Tolerance} below fp32's {fp32After:F4}"));
    }

    private (TrainingResult Result, double Seconds) FineTune(string start, string dtype)
    {
        var dataDir = PretrainedArcticFineTuneImprovesTests.DataDir;
        var modelArgs = new ModelArguments
        {
            QueryEncoder = start,
            TrainData = [Path.Combine(dataDir, "train.jsonl")],
            EvalData = Path.Combine(dataDir, "eval.jsonl"),
            Corpus = Path.Combine(dataDir, "corpus.jsonl"),
            KeyTemplate = "{title} {text}",
            Version = "bge",
            PoolingMethod = ["cls"],
            DenseMetric = "cos",
            Dtype = dtype,
            QueryMaxLength = 48,
            KeyMaxLength = 96,
            Metrics = ["mrr"],
            Cutoffs = [10],
        };
        var trainArgs = PretrainedArcticFineTuneImprovesTests.ShortFineTune(Path.Combine(dir, dtype), seed: 42);
        var clock = Stopwatch.StartNew();
        var result = new Trainer(modelArgs, trainArgs, new SilentObserver(), model => model).Run(EncoderEvaluator.FromArguments(modelArgs));
        return (result, clock.Elapsed.TotalSeconds);
    }
}
