using System.ComponentModel;
using LlmEmbedder.Data;
using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Training;

// Flag names are the snake_case of the property names and equal run_dense.py's (RetrievalArgs,
// RetrievalTrainingArgs); defaults are the reference's unless docs/DIFFERENCES.md says otherwise. A numeric property's
// accepted values are its [ArgumentRange]: Validate() checks them, and the command line checks and shows them.

/// <summary>Model and data arguments (run_dense.py's RetrievalArgs).</summary>
public sealed record ModelArguments
{
    [Description("Query encoder: a model folder or hub id")] public string QueryEncoder { get; init; } = "BAAI/bge-base-en";
    [Description("Key encoder (used when --tie_encoders false)")] public string KeyEncoder { get; init; } = "BAAI/bge-base-en";
    [Description("Share one encoder between queries and keys")] public bool TieEncoders { get; init; } = true;
    [Description("Prepend the task's instruction to queries and keys")] public bool AddInstruction { get; init; } = true;
    [Description("Instruction version: bge, e5, llm-embedder, zh_llm_embedder or one from --instruction_file")] public string Version { get; init; } = "bge";
    [Description("JSON file adding instruction versions and per-task training configs")] public string? InstructionFile { get; init; }
    [Description("Max query tokens")] [ArgumentRange(2, MaxDescription = "the model's max_position_embeddings")] public int QueryMaxLength { get; init; } = 256;
    [Description("Max key tokens")] [ArgumentRange(2, MaxDescription = "the model's max_position_embeddings")] public int KeyMaxLength { get; init; } = 256;
    [Description("Which side to truncate: right or left")] public string TruncationSide { get; init; } = "right";
    [Description("cls | mean, optionally with dense (extra bias-free Linear)")] public string[] PoolingMethod { get; init; } = ["cls"];
    [Description("cos | ip | l2")] public string DenseMetric { get; init; } = "cos";
    [Description("Folder that llm-embedder: paths are relative to")] public string DataRoot { get; init; } = TrainingJsonl.DefaultDataRoot;
    [Description("Training JSONL files (globs allowed; llm-embedder: prefix = data_root)")] public string[] TrainData { get; init; } = [];
    [Description("Evaluation JSONL (query, pos_index)")] public string? EvalData { get; init; }
    [Description("Corpus JSONL for evaluation")] public string? Corpus { get; init; }
    [Description("How corpus fields form a key")] public string KeyTemplate { get; init; } = Retrieval.KeyTemplate.Default;
    [Description("Retrieval metrics")] public string[] Metrics { get; init; } = [.. RetrievalMetrics.DefaultMetrics];
    [Description("Metric cutoffs")] [ArgumentRange(1)] public int[] Cutoffs { get; init; } = [.. RetrievalMetrics.DefaultCutoffs];
    [Description("Keys retrieved per query in evaluation; at least the largest cutoff")] [ArgumentRange(1)] public int Hits { get; init; } = RetrievalEvaluation.DefaultHits;
    [Description("Compute precision: fp32 | bf16 (| fp16, computed as bf16 on the CPU); master weights stay fp32")] public string Dtype { get; init; } = "fp16";
    [Description("Batch size for encoding in evaluation")] [ArgumentRange(1)] public int BatchSize { get; init; } = 256;
    [Description("Encoding of the training, eval, corpus and instruction files: utf-8 (strict), gb18030, gbk, big5, utf-16, ...")]
    public string Encoding { get; init; } = "utf-8";

    /// <summary>Rejects values outside their ranges, and hits below the largest cutoff, before anything is read.</summary>
    public void Validate()
    {
        ArgumentRanges.Validate(this);
        RetrievalEvaluation.CheckHits(Hits, Cutoffs);
    }
}

/// <summary>Training arguments (run_dense.py's RetrievalTrainingArgs and the Hugging Face TrainingArguments it uses).</summary>
public sealed record TrainingArguments
{
    [Description("Where checkpoints, the final model, args.json and logs go")] public string OutputDir { get; init; } = "data/outputs/";
    [Description("Train into an output_dir that is not empty; an earlier run's checkpoints, final model and logs there are removed first")] public bool OverwriteOutputDir { get; init; }
    [Description("Batches from one dataset: epoch | epoch-static | random | epoch-random")] public string? InbatchSameDataset { get; init; }
    [Description("Gather negatives from all processes")] public bool NegativeCrossDevice { get; init; } = true;
    [Description("Temperature for cos scores")] [ArgumentRange(0, MinExclusive = true)] public double CosTemperature { get; init; } = 0.01;
    [Description("Teacher temperature in KL distillation")] [ArgumentRange(0, MinExclusive = true)] public double TeacherTemperature { get; init; } = 1.0;
    [Description("Student temperature in KL distillation")] [ArgumentRange(0, MinExclusive = true)] public double StudentTemperature { get; init; } = 1.0;
    [Description("Weight of the contrastive loss")] [ArgumentRange(0)] public double ContrastiveWeight { get; init; } = 0.2;
    [Description("Weight of the distillation loss")] [ArgumentRange(0)] public double DistillWeight { get; init; } = 1.0;
    [Description("Ranking (stable) distillation")] public bool StableDistill { get; init; }
    // Every row's group is built when the data is loaded (negatives repeated up to G-1), so an absurd G would exhaust
    // memory before the first step; 1024 is far above any recipe (run_dense's use 8 to 15).
    [Description("Keys per query: 1 positive + (G-1) negatives")] [ArgumentRange(2, 1024)] public int TrainGroupSize { get; init; } = 8;
    [Description("first | random | teacher | teacher-pos")] public string SelectPositive { get; init; } = "first";
    [Description("random | first | teacher- | teacher+")] public string SelectNegative { get; init; } = "random";
    [Description("Keep at most this many rows per file")] [ArgumentRange(1)] public int? MaxSampleNum { get; init; }
    [Description("Drop samples whose teacher score range is smaller")] public double? TeacherScoresMargin { get; init; }
    [Description("Drop samples whose best teacher score is lower")] public double? TeacherScoresMin { get; init; }
    [Description("Apply the version's per-task training config")] public bool UseTrainConfig { get; init; }
    [Description("Queries per process per step")] [ArgumentRange(1)] public int PerDeviceTrainBatchSize { get; init; } = 16;
    [Description("Peak learning rate")] [ArgumentRange(0, MinExclusive = true)] public double LearningRate { get; init; } = 5e-6;
    [Description("Fraction of steps for linear warm-up")] [ArgumentRange(0, 1)] public double WarmupRatio { get; init; } = 0.1;
    [Description("AdamW weight decay (not on biases and LayerNorm)")] [ArgumentRange(0)] public double WeightDecay { get; init; } = 0.01;
    [Description("Epochs")] [ArgumentRange(0, MinExclusive = true, UnusedWhenPositive = nameof(MaxSteps))] public double NumTrainEpochs { get; init; } = 3.0;
    [Description("Total optimizer steps; -1: num_train_epochs decides")] [ArgumentRange(1, Unset = -1)] public int MaxSteps { get; init; } = -1;
    [Description("Micro-batches per optimizer step")] [ArgumentRange(1)] public int GradientAccumulationSteps { get; init; } = 1;
    [Description("Save a checkpoint every N steps; 0: none (the final model is always saved)")] [ArgumentRange(0)] public int SaveSteps { get; init; } = 2000;
    [Description("Log every N steps")] [ArgumentRange(1)] public int LoggingSteps { get; init; } = 100;
    [Description("Evaluate every N steps (with --eval_data and --corpus); 0 = only before and after")] [ArgumentRange(0)] public int EvalSteps { get; init; }
    [Description("Random seed")] public int Seed { get; init; } = 42;
    [Description("Gradient clipping norm; <= 0: no clipping")] public double MaxGradNorm { get; init; } = 1.0;
    [Description("Recompute activations in backward to save memory")] public bool GradientCheckpointing { get; init; }
    [Description("Gradient caching: embed each step's texts in chunks of this many (peak memory grows with the chunk, not the batch; same gradients, about one more forward)")]
    [ArgumentRange(1)] public int? MiniBatchSize { get; init; }
    [Description("none | tensorboard")] public string ReportTo { get; init; } = "none";
    [Description("Stop after this many steps")] [ArgumentRange(1)] public int? EarlyExitSteps { get; init; }
    [Description("Checkpoint folder to resume from, or 'latest'")] public string? ResumeFromCheckpoint { get; init; }
    [Description("cpu (cuda when a CUDA build of libtorch is present)")] public string Device { get; init; } = "cpu";
    [Description("Skip malformed training rows (and count them) instead of failing")] public bool SkipBadRows { get; init; }
    [Description("Matryoshka: also train the first N dimensions of each embedding as an embedding, e.g. 512 256 128 64 (the loss is summed over them)")]
    [ArgumentRange(1, MaxDescription = "the model's embedding size")] public int[] MatryoshkaDims { get; init; } = [];
    [Description("Weight of each --matryoshka_dims loss, in the same order (default: 1 each)")] [ArgumentRange(0, MinExclusive = true)] public double[] MatryoshkaWeights { get; init; } = [];

    /// <summary>Rejects values outside their ranges before anything is read (num_train_epochs only matters without max_steps).</summary>
    public void Validate()
    {
        ArgumentRanges.Validate(this);
        if (MatryoshkaDims.Length > 0) _ = Losses.MatryoshkaOptions.From(this);
        else if (MatryoshkaWeights.Length > 0) throw new EmbedderException("--matryoshka_weights needs --matryoshka_dims");
    }
}
