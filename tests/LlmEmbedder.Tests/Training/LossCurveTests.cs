using LlmEmbedder.Training;
using LlmEmbedder.Training.Checkpointing;

namespace LlmEmbedder.Tests.Training;

/// <summary>What loss.png plots, against a grouping and moving means worked out by hand; and the loss history's file format.</summary>
public sealed class LossCurveTests
{
    private static readonly string[] Names = ["qa", "chat"];

    [Fact]
    public void OneCurvePerDatasetInDatasetOrderThenTheMixedSteps()
    {
        LossPoint[] history =
        [
            new(1, 4.0, 1e-3, Dataset: 1), new(2, 2.0, 1e-3, Dataset: 0), new(3, 6.0, 1e-3, Dataset: 1),
            new(4, 1.0, 1e-3, Dataset: null), new(5, 3.0, 1e-3, Dataset: 0),
        ];
        var series = LossCurve.Series(history, Names);
        Assert.Equal(["qa", "chat", "mixed batches"], series.Select(s => s.Name));
        Assert.Equal([2.0, 5.0], series[0].Steps);
        Assert.Equal([2.0, 3.0], series[0].Losses);
        Assert.Equal([1.0, 3.0], series[1].Steps);
        Assert.Equal([4.0, 6.0], series[1].Losses);
        Assert.Equal([4.0], series[2].Steps);
    }

    [Fact]
    public void TheMovingMeanOfEachDatasetIsOverItsOwnSteps()
    {
        Assert.Equal([1.0, 1.5, 2.5, 3.5], LossCurve.MovingMean([1.0, 2.0, 3.0, 4.0], window: 2));
        Assert.Equal([2.0, 3.0, 14.0 / 3], LossCurve.MovingMean([2.0, 4.0, 8.0], window: 3));

        // 80 steps alternating between the datasets, loss = step: 40 points each, a window of 40 / 20 = 2 of the dataset's own steps.
        var history = Enumerable.Range(1, 80).Select(step => new LossPoint(step, step, 1e-3, Dataset: step % 2)).ToList();
        var qa = LossCurve.Series(history, Names)[0];
        Assert.Equal("qa", qa.Name);
        Assert.Equal(2, qa.Window);
        Assert.Equal(Enumerable.Range(1, 40).Select(i => 2.0 * i), qa.Steps);
        Assert.Equal(2.0, qa.MovingMean[0]);
        Assert.Equal((78.0 + 80) / 2, qa.MovingMean[^1]);
    }

    [Fact]
    public void OneDatasetOrAnOldHistoryIsOneCurveNamedLoss()
    {
        Assert.Equal("loss", LossCurve.Series([new(1, 1.0, 1e-3, Dataset: null), new(2, 1.0, 1e-3, Dataset: null)], Names).Single().Name);
        Assert.Equal("loss", LossCurve.Series([new(1, 1.0, 1e-3, Dataset: 0)], ["qa"]).Single().Name);
    }

    [Fact]
    public void TheEvaluationCurveIsMrrAt10WhenMeasuredElseTheFirstMetricWithACutoff()
    {
        var withMrr = LossCurve.MainMetric(
        [
            (0, new Dictionary<string, double> { ["mrr@1"] = 0.1, ["mrr@10"] = 0.2, ["ndcg@10"] = 0.3 }),
            (50, new Dictionary<string, double> { ["mrr@1"] = 0.4, ["mrr@10"] = 0.5, ["ndcg@10"] = 0.6 }),
        ])!;
        Assert.Equal("mrr@10", withMrr.Name);
        Assert.Equal([0.0, 50.0], withMrr.Steps);
        Assert.Equal([0.2, 0.5], withMrr.Values);
        var recall = LossCurve.MainMetric([(10, new Dictionary<string, double> { ["queries"] = 9, ["recall@5"] = 0.7 })])!;
        Assert.Equal("recall@5", recall.Name);
        Assert.Null(LossCurve.MainMetric([]));
    }

    [Fact]
    public void ATrainerStateWithoutDatasetsStillLoadsAndMixedStepsAreWrittenWithoutOne()
    {
        var dir = TestPaths.NewTempDir("loss-history");
        try
        {
            var path = Path.Combine(dir, "trainer_state.json");
            var state = new TrainerState(2, 10, new LlmEmbedder.Data.BatchSamplerState("epoch", Seed: 1, WorldSize: 1, PerDeviceBatchSize: 4, DataFingerprint: "x", Epoch: 0, StepInEpoch: 2),
                [new(1, 1.5, 1e-3, Dataset: 0), new(2, 1.25, 1e-3, Dataset: null)]);
            state.Save(path);
            var text = File.ReadAllText(path);
            Assert.Equal(1, text.Split("\"dataset\"").Length - 1);
            Assert.Equal(state.LossHistory, TrainerState.Load(path).LossHistory);

            File.WriteAllText(path, System.Text.RegularExpressions.Regex.Replace(text, @",\s*""dataset"": 0", ""));
            Assert.All(TrainerState.Load(path).LossHistory, p => Assert.Null(p.Dataset));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
