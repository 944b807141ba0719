using LlmEmbedder.Training;

namespace LlmEmbedder.Tests.Training;

/// <summary>The library checks the same ranges as the command line: Validate() on the records, and Trainer.Run before anything else.</summary>
public sealed class ArgumentRangeTests
{
    [Fact]
    public void TheReferenceDefaultsAreValid()
    {
        new ModelArguments().Validate();
        new TrainingArguments().Validate();
    }

    public static TheoryData<TrainingArguments, string> BadTrainingArguments => new()
    {
        { new TrainingArguments { LearningRate = -1 }, "--learning_rate must be > 0, got -1" },
        { new TrainingArguments { LearningRate = double.NaN }, "--learning_rate must be a finite number > 0, got NaN" },
        { new TrainingArguments { WeightDecay = -5 }, "--weight_decay must be >= 0, got -5" },
        { new TrainingArguments { WarmupRatio = 2 }, "--warmup_ratio must be 0 to 1, got 2" },
        { new TrainingArguments { MaxSteps = 0 }, "--max_steps must be -1 or >= 1, got 0" },
        { new TrainingArguments { NumTrainEpochs = 0 }, "--num_train_epochs must be > 0 unless --max_steps is given, got 0" },
        { new TrainingArguments { NumTrainEpochs = double.PositiveInfinity, MaxSteps = 5 }, "--num_train_epochs must be a finite number" },
        { new TrainingArguments { CosTemperature = 1e-320 }, "--cos_temperature must be > 0, got 1e-320 (0 in float32" },
        { new TrainingArguments { MaxGradNorm = double.NaN }, "--max_grad_norm must be a finite number, got NaN" },
        { new TrainingArguments { EarlyExitSteps = 0 }, "--early_exit_steps must be >= 1, got 0" },
    };

    [Theory]
    [MemberData(nameof(BadTrainingArguments))]
    public void TrainingArgumentsOutsideTheirRange(TrainingArguments arguments, string expected) =>
        Assert.StartsWith(expected, Assert.Throws<EmbedderException>(arguments.Validate).Message);

    [Fact]
    public void NumTrainEpochsIsUnusedWithMaxSteps() => new TrainingArguments { NumTrainEpochs = 0, MaxSteps = 10 }.Validate();

    [Fact]
    public void MaxGradNormMayBeZeroOrNegative()
    {
        new TrainingArguments { MaxGradNorm = 0 }.Validate();
        new TrainingArguments { MaxGradNorm = -1 }.Validate();
    }

    [Theory]
    [InlineData(0, new[] { 1, 5 }, "--hits must be >= 1, got 0")]
    [InlineData(5, new[] { 0, 5 }, "--cutoffs must be >= 1, got 0")]
    [InlineData(50, new[] { 1, 100 }, "hits (50) is smaller than the largest cutoff (100)")]
    public void HitsAndCutoffs(int hits, int[] cutoffs, string expected) =>
        Assert.StartsWith(expected, Assert.Throws<EmbedderException>(new ModelArguments { Hits = hits, Cutoffs = cutoffs }.Validate).Message);

    [Fact]
    public void TrainerRunChecksTheArgumentsBeforeItReadsDataOrWritesOutput()
    {
        var dir = TestPaths.NewTempDir("ranges");
        try
        {
            var output = Path.Combine(dir, "out");
            var trainer = new Trainer(new ModelArguments { TrainData = [Path.Combine(dir, "missing.jsonl")], QueryMaxLength = 0 },
                new TrainingArguments { OutputDir = output }, new SilentObserver(), model => model);
            var error = Assert.Throws<EmbedderException>(() => trainer.Run());
            Assert.Equal("--query_max_length must be 2 to the model's max_position_embeddings, got 0", error.Message);
            Assert.False(Directory.Exists(output));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
