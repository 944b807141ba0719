using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// `llm-embedder train` with no flags: a small BERT (2 layers, hidden 128, the real Chinese vocabulary, seeded
/// random weights) fine-tuned on the Chinese sample data in samples/, evaluated before and after. Run again, it
/// replaces its earlier run (--overwrite_output_dir) and keeps its start model, output_dir/initial-model. Then it
/// merges the fine-tuned model with its start model (LM-Cocktail), the weights chosen on the sample eval set and on a
/// second, general set the data never trains (samples/general), into output_dir/merged.
/// </summary>
internal static class EmbeddedDefault
{
    public const string OutputDir = "outputs/llm-embedder-default";
    private static readonly string InitialModel = Path.Combine(OutputDir, "initial-model");
    public static readonly string MergedModel = Path.Combine(OutputDir, "merged");
    private const double WeightStep = 0.25;

    public static (ModelArguments Model, TrainingArguments Training) Arguments()
    {
        var samples = FindSamples();
        var model = new ModelArguments
        {
            QueryEncoder = InitialModel,
            KeyEncoder = InitialModel,
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
            // Users rerun the README's first command; the start model inside output_dir is an input and stays.
            OverwriteOutputDir = true,
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

    /// <summary>
    /// After training: the fine-tuned model merged with its start model, weights searched for the best mean mrr@10 over
    /// the domain set (samples/eval) and the general one (samples/general), on a grid of step 0.25: each weight vector
    /// costs an evaluation of both sets (about 1 s here), and a finer grid would add more time than the run has.
    /// </summary>
    public static MergeRequest MergeRequest(ModelArguments model)
    {
        var samples = FindSamples();
        var settings = new EvaluationSettings(null, model.KeyTemplate, model.Metrics, model.Cutoffs, model.Hits, model.BatchSize);
        var sets = MergeCommand.EvalSets(
            [model.EvalData!, Path.Combine(samples, "general", "queries.jsonl")],
            [model.Corpus!, Path.Combine(samples, "general", "corpus.jsonl")],
            model.DataRoot, TextEncoding.Parse(model.Encoding), settings);
        return new MergeRequest([OutputDir, InitialModel], null, MergedModel, sets, MergeCommand.DefaultMetric, WeightStep);
    }

    /// <summary>
    /// The start model (seeded random weights), made when the trainer first resolves it: by then the trainer holds
    /// output_dir, so a second default run at the same time fails on the lock before writing anything.
    /// </summary>
    public static string PrepareInitialModel(string model)
    {
        if (model != InitialModel) throw new InvalidOperationException($"the embedded default trains {InitialModel}, not {model}");
        if (!File.Exists(Path.Combine(InitialModel, "model.safetensors")))
        {
            var samples = FindSamples();
            RandomModelFolder.Create(Path.Combine(samples, "model", "config.json"), Path.Combine(samples, "model"), InitialModel, seed: 42);
        }
        return Path.GetFullPath(InitialModel);
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
