using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using LlmEmbedder.Training.Optimization;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// The train-step benchmark times <see cref="TrainingStep"/> on a <see cref="DenseRetriever"/>; this checks that those
/// two, fed the sampler's batches by hand, repeat the losses the trainer logs, so the benchmark times the trainer's step.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class TrainingStepReproducesTrainerTests : IDisposable
{
    private const int Steps = 4, Batch = 4, Group = 4, Seed = 7;
    private const double LearningRate = 1e-3;
    private readonly string dir = TestPaths.NewTempDir("train-step");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void RetrieverStepOnTheSamplerBatchesRepeatsTheTrainerLosses()
    {
        // No dropout: other test classes in this process may draw from torch's global generator between a seed and its use.
        var model = CliProcess.TinyChineseModel(dir, dropout: 0.0);
        var data = Path.Combine(dir, "qa", "train.jsonl");
        TrainingDataGenerator.Write(data, rows: 40, task: "qa", seed: 5);

        var modelArgs = new ModelArguments
        {
            QueryEncoder = model, TrainData = [data], DataRoot = dir, QueryMaxLength = 16, KeyMaxLength = 24, Dtype = "fp32",
        };
        var trainArgs = new TrainingArguments
        {
            OutputDir = Path.Combine(dir, "out"), MaxSteps = Steps, PerDeviceTrainBatchSize = Batch, TrainGroupSize = Group,
            LearningRate = LearningRate, Seed = Seed, SaveSteps = 0, CosTemperature = 0.02,
        };
        var logged = new Trainer(modelArgs, trainArgs, new SilentObserver(), path => path).Run().LossHistory;

        // The trainer's defaults, spelled out: bge instructions, the flags' per-task config, no same-dataset batching.
        var training = TrainingData.Load(new TrainingDataOptions([data], dir, TrainGroupSize: Group, CommandLine: new TaskTrainingConfig(), Seed: Seed));
        var sampler = new BatchSampler(InBatchSameDataset.None, training.Spans, Batch, worldSize: 1, rank: 0, Seed);
        using var retriever = new DenseRetriever(SentenceEncoder.Load(model, new EncoderSpec { QueryMaxLength = 16, KeyMaxLength = 24 }),
            keyEncoder: null, new RetrieverOptions());
        using var step = new TrainingStep(retriever, new TrainingStepOptions { LearningRate = LearningRate, Seed = Seed });
        var schedule = LinearWarmupSchedule.FromRatio(LearningRate, trainArgs.WarmupRatio, Steps);
        var loss = new RetrievalLossOptions { DenseMetric = DenseMetric.Cos, CosTemperature = 0.02 };
        retriever.Train(true);
        var repeated = new List<double>();
        for (int i = 1; i <= Steps; i++)
        {
            var groups = sampler.Next().RankIndices.Select(index => training.Groups[index]).ToList();
            var batch = retriever.Tokenize(groups.Select(g => g.Query).ToList(), groups.SelectMany(g => g.Keys).ToList(), null, loss);
            repeated.Add(step.Run(i, [batch], schedule.LearningRateAt(i - 1)).Loss);
        }

        Assert.Equal(Steps, logged.Count);
        for (int i = 0; i < Steps; i++)
            Assert.True(Math.Abs(logged[i].Loss - repeated[i]) <= 1e-6, $"step {i + 1}: trainer {logged[i].Loss:R}, retriever step {repeated[i]:R}");
        // The weights change (lr 1e-3), so equal losses after step 1 mean equal updates, not one repeated value.
        Assert.Equal(Steps, repeated.Distinct().Count());
    }
}
