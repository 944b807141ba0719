using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// `llm-embedder train` with no flags: a small BERT (2 layers, hidden 128, the real Chinese vocabulary, seeded
/// random weights) fine-tuned on the Chinese sample data in samples/, evaluated before and after.
/// </summary>
internal static class EmbeddedDefault
{
    public const string OutputDir = "outputs/llm-embedder-default";

    public static (ModelArguments Model, TrainingArguments Training) Arguments()
    {
        var samples = FindSamples();
        var initialModel = Path.Combine(OutputDir, "initial-model");
        if (!File.Exists(Path.Combine(initialModel, "model.safetensors")))
            RandomModelFolder.Create(Path.Combine(samples, "model", "config.json"), Path.Combine(samples, "model"), initialModel, seed: 42);

        var model = new ModelArguments
        {
            QueryEncoder = initialModel,
            KeyEncoder = initialModel,
            Version = "zh_llm_embedder",
            InstructionFile = Path.Combine(samples, "instructions.json"),
            DataRoot = samples,
            TrainData = ["llm-embedder:train/qa/train.jsonl", "llm-embedder:train/icl/train.jsonl"],
            EvalData = Path.Combine(samples, "eval", "queries.jsonl"),
            Corpus = Path.Combine(samples, "eval", "corpus.jsonl"),
            QueryMaxLength = 64,
            KeyMaxLength = 96,
            Dtype = "fp32",
            // Mean pooling: a randomly initialised model learns far faster with it than with CLS (see samples/README.md).
            PoolingMethod = ["mean"],
            Cutoffs = [1, 5, 10],
        };
        var training = new TrainingArguments
        {
            OutputDir = OutputDir,
            InbatchSameDataset = "epoch",
            LearningRate = 5e-4,
            NumTrainEpochs = 3,
            TrainGroupSize = 8,
            PerDeviceTrainBatchSize = 16,
            CosTemperature = 0.02,
            SaveSteps = 100,
            LoggingSteps = 10,
            ReportTo = "tensorboard",
            UseTrainConfig = true,
        };
        return (model, training);
    }

    /// <summary>samples/ of the repository this program was built from (the launcher builds into .build/cli/).</summary>
    private static string FindSamples()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "samples");
            if (File.Exists(Path.Combine(candidate, "instructions.json"))) return candidate;
        }
        throw new EmbedderException($"samples/ not found above {AppContext.BaseDirectory}; run the embedded default from a checkout of the repository");
    }
}
