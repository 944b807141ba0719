using System.Diagnostics;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Data;
using LlmEmbedder.Distributed;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using LlmEmbedder.Training.Checkpointing;
using LlmEmbedder.Training.Losses;
using LlmEmbedder.Training.Optimization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>Scores an encoder pair on held-out data (evaluation before, during and after training).</summary>
public interface IEncoderEvaluator
{
    /// <summary>Fails before training when the evaluation could not run with encoders of this spec (e.g. no instruction for its task).</summary>
    void CheckInstruction(EncoderSpec spec);

    IReadOnlyDictionary<string, double> Evaluate(SentenceEncoder queryEncoder, SentenceEncoder keyEncoder);
}

/// <summary>What a finished run produced.</summary>
/// <param name="Stopped">The run was asked to stop (<see cref="Trainer.Run"/>'s token) and ended at <paramref name="Steps"/>
/// with a checkpoint of that step, not the final model.</param>
public sealed record TrainingResult(string OutputDir, int Steps, IReadOnlyList<LossPoint> LossHistory,
    IReadOnlyDictionary<string, double>? MetricsBefore, IReadOnlyDictionary<string, double>? MetricsAfter, bool Stopped = false);

/// <summary>
/// run_dense.py's loop: load and group the data, build the <see cref="DenseRetriever"/>, then per step a batch from the
/// sampler → <see cref="TrainingStep"/> (loss, backward, clip, AdamW) at the schedule's rate; logs, checkpoints every
/// save_steps, evaluations every eval_steps, and the final model in output_dir. A step whose loss or gradient is not
/// finite is not applied and ends the run; weights that are not finite are never saved.
/// </summary>
public sealed class Trainer
{
    private readonly ModelArguments modelArgs;
    private readonly TrainingArguments trainArgs;
    private readonly ITrainingObserver observer;
    private readonly Func<string, string> resolveModel;
    private readonly IProcessGroup processGroup;

    /// <param name="processGroup">The ranks of an mpirun job (data-parallel: each rank trains on its slice of every
    /// global batch; only rank 0 writes output_dir and evaluates); null = one process. <see cref="Run"/> takes part in
    /// the ranks' <see cref="IProcessGroup.AgreeOnStartup"/> whether its startup succeeds or throws, so a rank that
    /// fails there never leaves the others waiting.</param>
    public Trainer(ModelArguments modelArgs, TrainingArguments trainArgs, ITrainingObserver observer, Func<string, string> resolveModel,
        IProcessGroup? processGroup = null)
    {
        this.modelArgs = modelArgs;
        this.trainArgs = trainArgs;
        this.observer = observer;
        this.resolveModel = resolveModel;
        this.processGroup = processGroup ?? new SingleProcess();
    }

    private bool WritesOutput => processGroup.Rank == 0;

    /// <param name="stopRequested">Once cancelled (Ctrl-C), the run saves a checkpoint at the next step boundary and returns
    /// with <see cref="TrainingResult.Stopped"/>; under mpirun the ranks agree on the step, so all save and stop at the same one.</param>
    public TrainingResult Run(IEncoderEvaluator? evaluator = null, CancellationToken stopRequested = default)
    {
        // A rank whose startup throws still joins the ranks' agreement, so the others stop instead of waiting for it.
        using var run = processGroup.RunStartup(() => Start(evaluator));
        if (!WritesOutput) evaluator = null;   // rank 0 evaluates; the others wait for it in their next collective
        DescribeRun(run);
        var memory = DescribeMemory(run);
        var retriever = run.Retriever;
        var metricsBefore = run.StartStep == 0 ? Evaluate(evaluator, retriever, 0, "before training", run.Tensorboard) : null;
        if (metricsBefore is not null) run.Evaluations.Add((0, metricsBefore));

        var clock = Stopwatch.StartNew();
        double lossSinceLog = 0;
        int stepsSinceLog = 0;
        retriever.Train(true);
        for (int step = run.StartStep + 1; step <= run.LastStep; step++)
        {
            using var scope = NewDisposeScope();
            var microBatches = Enumerable.Range(0, trainArgs.GradientAccumulationSteps).Select(_ => NextBatch(run)).ToList();
            var result = run.Step.Run(step, microBatches.Select(b => b.Batch).ToList(), run.Schedule.LearningRateAt(step - 1));

            int? dataset = microBatches.Select(b => b.Dataset).Distinct().Count() == 1 ? microBatches[0].Dataset : null;
            run.LossHistory.Add(new LossPoint(step, result.Loss, result.LearningRate, dataset, result.GradNorm));
            lossSinceLog += result.Loss;
            stepsSinceLog++;
            bool logNow = step % Math.Max(1, trainArgs.LoggingSteps) == 0 || step == run.LastStep;
            Report(run, step, result, logNow ? lossSinceLog / stepsSinceLog : result.Loss, logNow, clock);
            if (logNow)
            {
                lossSinceLog = 0;
                stepsSinceLog = 0;
            }
            bool checkpointDue = trainArgs.SaveSteps > 0 && step % trainArgs.SaveSteps == 0 && step < run.LastStep;
            if (checkpointDue) SaveCheckpoint(run, step, result.LearningRate);
            if (step < run.LastStep && StopAgreed(stopRequested))
            {
                if (!checkpointDue) SaveCheckpoint(run, step, result.LearningRate);
                retriever.Train(false);
                return new TrainingResult(trainArgs.OutputDir, step, run.LossHistory, metricsBefore, null, Stopped: true);
            }
            if (trainArgs.EvalSteps > 0 && step % trainArgs.EvalSteps == 0 && step < run.LastStep)
            {
                if (Evaluate(evaluator, retriever, step, $"step {step}", run.Tensorboard) is { } metrics) run.Evaluations.Add((step, metrics));
                retriever.Train(true);
            }
        }
        retriever.Train(false);
        using (var process = Process.GetCurrentProcess())
            observer.Message($"peak memory of the training steps: {MemoryEstimate.Gibibytes(process.PeakWorkingSet64)} (estimated {MemoryEstimate.Gibibytes(memory.Total)})");

        EnsureFiniteWeights(run, run.LastStep, run.Schedule.LearningRateAt(run.LastStep - 1));
        if (WritesOutput)
        {
            SaveFinal(retriever, run.Spec);
            run.State(run.LastStep).Save(Path.Combine(trainArgs.OutputDir, CheckpointFolders.TrainerStateFile));
        }
        var metricsAfter = Evaluate(evaluator, retriever, run.LastStep, "after training", run.Tensorboard);
        if (WritesOutput)
        {
            if (evaluator is not null) SaveMetrics(metricsBefore, metricsAfter, run.Evaluations);
            var evaluations = run.Evaluations.ToList();
            if (metricsAfter is not null) evaluations.Add((run.LastStep, metricsAfter));
            LossCurve.Save(Path.Combine(trainArgs.OutputDir, "loss.png"), run.LossHistory, run.Data.Datasets.Select(d => d.Name).ToList(), evaluations);
        }
        return new TrainingResult(trainArgs.OutputDir, run.LastStep, run.LossHistory, metricsBefore, metricsAfter);
    }

    /// <summary>What <see cref="Start"/> set up for the loop.</summary>
    private sealed class StartedRun : IDisposable
    {
        public required TrainingData Data { get; init; }
        public required BatchSampler Sampler { get; init; }
        /// <summary>Per dataset (index as in <see cref="TrainingData.Datasets"/>): its loss.</summary>
        public required IReadOnlyList<RetrievalLossOptions> DatasetLosses { get; init; }
        public required DenseRetriever Retriever { get; init; }
        public required TrainingStep Step { get; init; }
        public required LinearWarmupSchedule Schedule { get; init; }
        public required int StepsPerEpoch { get; init; }
        public required int TotalSteps { get; init; }
        /// <summary>The last step this run takes (total steps, or earlier with early_exit_steps).</summary>
        public required int LastStep { get; init; }
        /// <summary>0, or the step of the checkpoint resumed from.</summary>
        public required int StartStep { get; init; }
        public required List<LossPoint> LossHistory { get; init; }
        /// <summary>How the trained model turns text into vectors: saved with every encoder folder.</summary>
        public required EncoderSpec Spec { get; init; }
        /// <summary>This run's evaluations before and during training, by step.</summary>
        public List<(int Step, IReadOnlyDictionary<string, double> Metrics)> Evaluations { get; } = [];
        public required SummaryWriter? Tensorboard { get; init; }

        public TrainerState State(int step) => new(step, TotalSteps, Sampler.State, LossHistory, get_num_threads());

        /// <summary>Rank 0's hold on output_dir (null on the other ranks), released when the run ends.</summary>
        public required OutputDirClaim? OutputClaim { get; init; }

        public void Dispose()
        {
            Step.Dispose();
            Retriever.Dispose();
            OutputClaim?.Dispose();
        }
    }

    /// <summary>
    /// Everything that can fail on bad input, before the first byte is written to output_dir; then output_dir, and the
    /// ranks' agreement that every one of them started.
    /// </summary>
    private StartedRun Start(IEncoderEvaluator? evaluator)
    {
        ValidateArguments();
        // Rank 0 alone writes output_dir: it holds it for the whole run, from before any input is read (OutputDirClaim).
        var outputClaim = processGroup.OnRankZero(() => OutputDirClaim.For(modelArgs, trainArgs));
        try
        {
            return Start(evaluator, outputClaim);
        }
        catch
        {
            outputClaim?.Dispose();
            throw;
        }
    }

    private StartedRun Start(IEncoderEvaluator? evaluator, OutputDirClaim? outputClaim)
    {
        var data = LoadData();
        // How the trained model turns text into vectors, saved with every encoder folder and used by its evaluation.
        var matryoshka = MatryoshkaOptions.From(trainArgs);
        var spec = modelArgs.ToEncoderSpec(data.Datasets.Select(d => d.Task).Distinct()) with { MatryoshkaDims = matryoshka?.Dimensions };
        evaluator?.CheckInstruction(spec);
        var sampler = new BatchSampler(
            trainArgs.InbatchSameDataset is { } mode ? InBatchSameDatasetNames.Parse(mode) : InBatchSameDataset.None,
            data.Spans, trainArgs.PerDeviceTrainBatchSize, processGroup.WorldSize, processGroup.Rank, trainArgs.Seed);
        int stepsPerEpoch = Math.Max(1, sampler.StepsPerEpoch / trainArgs.GradientAccumulationSteps);
        int totalSteps = trainArgs.MaxSteps > 0 ? trainArgs.MaxSteps : (int)Math.Ceiling(trainArgs.NumTrainEpochs * stepsPerEpoch);
        if (sampler.StepsPerEpoch == 0)
            throw new EmbedderException($"not enough training samples for one batch of {sampler.GlobalBatchSize}");

        string? resumeFrom = trainArgs.ResumeFromCheckpoint is { } resume ? CheckpointFolders.Resolve(resume, trainArgs.OutputDir) : null;
        var retriever = LoadRetriever(spec, resumeFrom);
        TrainingStep? trainingStep = null;
        try
        {
            matryoshka?.CheckFits(retriever.QueryEncoder.Dimension);
            trainingStep = new TrainingStep(retriever, new TrainingStepOptions
            {
                LearningRate = trainArgs.LearningRate, WeightDecay = trainArgs.WeightDecay, MaxGradNorm = trainArgs.MaxGradNorm, Seed = trainArgs.Seed,
            });
            var lossHistory = new List<LossPoint>();
            int startStep = resumeFrom is null ? 0 : Resume(resumeFrom, trainingStep, sampler, lossHistory);

            // output_dir is made before the ranks agree that startup succeeded, so a folder that cannot be made is a startup
            // error like any other (one message, no MPI_Abort); if another rank failed, what this run created goes again.
            outputClaim?.ClearEarlierRun(observer.Message);
            bool createdOutputDir = outputClaim?.CreatedFolder == true;
            if (WritesOutput) Directory.CreateDirectory(trainArgs.OutputDir);
            var tensorboard = trainArgs.ReportTo == "tensorboard" && WritesOutput
                ? utils.tensorboard.SummaryWriter(Path.Combine(trainArgs.OutputDir, "runs")) : null;
            // Every rank read the same data and checkpoint; a rank that failed above reports it, the others stop here.
            if (processGroup.AgreeOnStartup(failedHere: false) is { } failedRank)
            {
                if (createdOutputDir) Directory.Delete(trainArgs.OutputDir, recursive: true);
                throw new StartupFailedElsewhereException(failedRank);
            }
            return new StartedRun
            {
                Data = data,
                Sampler = sampler,
                DatasetLosses = data.Datasets.Select(d => LossOptions(d.Config, spec.Metric)).ToList(),
                Retriever = retriever,
                Step = trainingStep,
                Schedule = LinearWarmupSchedule.FromRatio(trainArgs.LearningRate, trainArgs.WarmupRatio, totalSteps),
                StepsPerEpoch = stepsPerEpoch,
                TotalSteps = totalSteps,
                LastStep = Math.Min(totalSteps, trainArgs.EarlyExitSteps ?? int.MaxValue),
                StartStep = startStep,
                LossHistory = lossHistory,
                Spec = spec,
                OutputClaim = outputClaim,
                Tensorboard = tensorboard,
            };
        }
        catch
        {
            trainingStep?.Dispose();
            retriever.Dispose();
            throw;
        }
    }

    private void ValidateArguments()
    {
        new RunArguments(modelArgs, trainArgs).Validate();
        if (modelArgs.TrainData.Length == 0) throw new EmbedderException("--train_data: no training files given");
        if (trainArgs.ReportTo is not ("none" or "tensorboard")) throw new EmbedderException($"--report_to '{trainArgs.ReportTo}': expected none or tensorboard");
        if (trainArgs.Device != "cpu") throw new EmbedderException($"--device '{trainArgs.Device}': only cpu is available in this build (TorchSharp-cpu)");
        if (modelArgs.TruncationSide is not ("right" or "left")) throw new EmbedderException($"--truncation_side '{modelArgs.TruncationSide}': expected right or left");
        MixedPrecisionModel.ParseDtype(modelArgs.Dtype);
        // Pooling, metric and the instruction version are checked where they are parsed, before any data is read.
        modelArgs.ToEncoderSpec(tasks: []);
    }

    private TrainingData LoadData() => TrainingData.Load(new TrainingDataOptions(
        modelArgs.TrainData, modelArgs.DataRoot, modelArgs.Version, modelArgs.InstructionFile, modelArgs.AddInstruction,
        trainArgs.UseTrainConfig, trainArgs.TrainGroupSize,
        new TaskTrainingConfig(
            SelectionNames.ParsePositive(trainArgs.SelectPositive), SelectionNames.ParseNegative(trainArgs.SelectNegative),
            trainArgs.MaxSampleNum, trainArgs.TeacherScoresMargin, trainArgs.TeacherScoresMin,
            trainArgs.ContrastiveWeight, trainArgs.DistillWeight, trainArgs.TeacherTemperature, trainArgs.StudentTemperature,
            trainArgs.StableDistill),
        trainArgs.Seed, trainArgs.SkipBadRows, TextEncoding.Parse(modelArgs.Encoding)));

    private static SentenceEncoder LoadEncoder(string dir, EncoderSpec spec)
    {
        // Loaded as this run trains it, whatever the start folder's own spec says; its dense pooler, if any, is checked below.
        var encoder = SentenceEncoder.Load(dir, spec with { Dense = false });
        string? problem = encoder.Dense switch
        {
            null => null,
            { IsDensePooler: false } dense => $"{dir}: its Dense layer ([{dense.OutFeatures}, {dense.InFeatures}], " +
                                              $"{(dense.Bias is null ? "no bias" : "with bias")}, {dense.Activation}) is not the square bias-free dense pooler that training updates",
            _ when !spec.Dense => $"{dir}: has a dense pooler (dense_pooler.bin or 2_Dense); add dense to --pooling_method " +
                                             "(e.g. --pooling_method cls dense) to train it, or remove it from the folder",
            _ => null,
        };
        if (problem is not null)
        {
            encoder.Dispose();
            throw new EmbedderException(problem);
        }
        return encoder;
    }

    /// <summary>The encoders of --query_encoder and --key_encoder (or of the checkpoint resumed from) and their dense pooler.</summary>
    private DenseRetriever LoadRetriever(EncoderSpec spec, string? resumeFrom)
    {
        var queryDir = resumeFrom is null ? resolveModel(modelArgs.QueryEncoder) : CheckpointEncoderDir(resumeFrom, "query");
        var queryEncoder = LoadEncoder(queryDir, spec);
        SentenceEncoder? keyEncoder = null;
        try
        {
            keyEncoder = modelArgs.TieEncoders ? null
                : LoadEncoder(resumeFrom is null ? resolveModel(modelArgs.KeyEncoder) : CheckpointEncoderDir(resumeFrom, "key"), spec);
            if (spec.Dense) StartDensePooler(queryEncoder, queryDir, fromCheckpoint: resumeFrom is not null);
            return new DenseRetriever(queryEncoder, keyEncoder, new RetrieverOptions
            {
                TruncationSide = modelArgs.TruncationSide == "left" ? TruncationSide.Left : TruncationSide.Right,
                NegativeCrossDevice = trainArgs.NegativeCrossDevice,
                ComputeDtype = MixedPrecisionModel.ParseDtype(modelArgs.Dtype),
                GradientCheckpointing = trainArgs.GradientCheckpointing,
                MiniBatchSize = trainArgs.MiniBatchSize,
            }, processGroup);
        }
        catch
        {
            keyEncoder?.Dispose();
            queryEncoder.Dispose();
            throw;
        }
    }

    /// <summary>Restores the optimizer, the sampler's position and the loss history of a checkpoint; returns its step.</summary>
    private int Resume(string checkpoint, TrainingStep trainingStep, BatchSampler sampler, List<LossPoint> lossHistory)
    {
        var state = TrainerState.Load(Path.Combine(checkpoint, CheckpointFolders.TrainerStateFile));
        trainingStep.LoadOptimizerState(Path.Combine(checkpoint, "optimizer.bin"));
        sampler.Restore(state.Sampler);
        lossHistory.AddRange(state.LossHistory);
        observer.Message($"resumed from {checkpoint} at step {state.GlobalStep}");
        if (state.TorchThreads is { } threads && threads != get_num_threads())
            observer.Message($"note: the checkpoint was written by a run with {threads} torch threads, this run has {get_num_threads()}; " +
                             "its losses will match an uninterrupted run to float32 rounding (about 1e-5), not bit for bit");
        return state.GlobalStep;
    }

    /// <summary>
    /// The dense pooler trained with --pooling_method dense: the query encoder's (its folder's dense_pooler.bin or
    /// 2_Dense), else a fresh one seeded from --seed, like the reference's randomly initialised torch.nn.Linear.
    /// </summary>
    private void StartDensePooler(SentenceEncoder queryEncoder, string queryDir, bool fromCheckpoint)
    {
        if (queryEncoder.Dense is not null) return;
        if (fromCheckpoint) throw new EmbedderException($"{queryDir}: has no {SentenceEncoder.DensePoolerFile} although --pooling_method has dense");
        observer.Message($"{queryDir}: no {SentenceEncoder.DensePoolerFile}; the dense pooler starts from random weights (seed {trainArgs.Seed})");
        using var generator = new Generator((ulong)trainArgs.Seed);
        var pooler = DenseLayer.CreateDensePooler(queryEncoder.Model.Config.HiddenSize, generator);
        queryEncoder.SetDense(pooler, owned: true);
    }

    private static string CheckpointEncoderDir(string checkpoint, string side)
    {
        var untied = Path.Combine(checkpoint, side + "_encoder");
        return Directory.Exists(untied) ? untied : Path.Combine(checkpoint, "encoder");
    }

    /// <summary>
    /// This rank's share of the sampler's next (micro-)batch, tokenized, with the loss of the dataset it came from; and that
    /// dataset's index when the whole global batch is from it (batching by dataset), for the per-dataset loss curves.
    /// </summary>
    private static (RetrievalBatch Batch, int? Dataset) NextBatch(StartedRun run)
    {
        var sampled = run.Sampler.Next();
        var groups = sampled.RankIndices.Select(i => run.Data.Groups[i]).ToList();
        var batch = run.Retriever.Tokenize(groups.Select(g => g.Query).ToList(), groups.SelectMany(g => g.Keys).ToList(),
            groups.All(g => g.TeacherScores is not null) ? groups.SelectMany(g => g.TeacherScores!).ToArray() : null,
            run.DatasetLosses[groups[0].DatasetIndex]);
        return (batch, sampled.DatasetIndex);
    }

    /// <summary>
    /// Whether to stop at this step boundary: the token, or under mpirun any rank's token (one all-reduce of a flag per
    /// step, so every rank checkpoints and stops at the same step).
    /// </summary>
    private bool StopAgreed(CancellationToken stopRequested)
    {
        if (processGroup.WorldSize == 1) return stopRequested.IsCancellationRequested;
        Span<double> stop = [stopRequested.IsCancellationRequested ? 1 : 0];
        processGroup.AllReduceSum(stop);
        return stop[0] > 0;
    }

    /// <summary>Weights that overflowed (a learning rate far too high) are never saved, as a checkpoint or as the result.</summary>
    private static void EnsureFiniteWeights(StartedRun run, int step, double learningRate)
    {
        if (!run.Step.WeightsAreFinite())
            throw new EmbedderException($"step {step}: the weights are not finite after the update at learning rate {TrainingStep.Format(learningRate)}; " +
                                        "lower --learning_rate or check the data (the model of this step is not saved)");
    }

    /// <summary>A dataset's loss: its training config's weights and temperatures, the run's metric and cos temperature.</summary>
    private RetrievalLossOptions LossOptions(TaskTrainingConfig config, DenseMetric metric) => new()
    {
        DenseMetric = metric,
        CosTemperature = trainArgs.CosTemperature,
        ContrastiveWeight = config.ContrastiveWeight,
        DistillWeight = config.DistillWeight,
        TeacherTemperature = config.TeacherTemperature,
        StudentTemperature = config.StudentTemperature,
        StableDistill = config.StableDistill,
        Matryoshka = MatryoshkaOptions.From(trainArgs),
    };

    private void DescribeRun(StartedRun run)
    {
        foreach (var dataset in run.Data.Datasets)
            observer.Message($"dataset {dataset.Name} ({dataset.SourceFile}): task {dataset.Task}, {dataset.Count} groups" +
                (dataset.SkippedRows > 0 ? $", {dataset.SkippedRows} bad rows skipped" : "") +
                (dataset.DroppedRows > 0 ? $", {dataset.DroppedRows} rows dropped" : ""));
        observer.Message($"{run.TotalSteps} steps ({run.StepsPerEpoch}/epoch), global batch {run.Sampler.GlobalBatchSize}{(processGroup.WorldSize > 1 ? $" ({processGroup.WorldSize} processes x {trainArgs.PerDeviceTrainBatchSize})" : "")} x group {trainArgs.TrainGroupSize}, " +
            $"batching {run.Sampler.Mode}, compute {MixedPrecisionModel.ParseDtype(modelArgs.Dtype)}{(trainArgs.GradientCheckpointing ? " with gradient checkpointing" : "")}" +
            (trainArgs.MiniBatchSize is { } chunk ? $", gradient caching in chunks of {chunk} texts" : "") + ", " +
            $"lr {trainArgs.LearningRate}, {get_num_threads()} threads");
    }

    private MemoryEstimate EstimateMemory(StartedRun run, int? miniBatchSize, bool gradientCheckpointing) => MemoryEstimate.For(
        run.Retriever.QueryEncoder.Model.Config, run.Retriever.Parameters.Sum(p => p.Parameter.numel()), MixedPrecisionModel.ParseDtype(modelArgs.Dtype),
        gradientCheckpointing,
        MemoryEstimate.Graph(trainArgs.PerDeviceTrainBatchSize, trainArgs.TrainGroupSize, run.Spec.QueryMaxLength, run.Spec.KeyMaxLength, miniBatchSize));

    /// <summary>
    /// The estimate of this process's peak memory; when it is more than the machine has available, a warning naming a
    /// --mini_batch_size (or the other settings) with which it would fit.
    /// </summary>
    private MemoryEstimate DescribeMemory(StartedRun run)
    {
        var estimate = EstimateMemory(run, trainArgs.MiniBatchSize, trainArgs.GradientCheckpointing);
        long? available = MemoryEstimate.AvailableBytes();
        observer.Message("memory: " + estimate.Describe(cached: trainArgs.MiniBatchSize is not null) +
                         (available is { } a ? $"; {MemoryEstimate.Gibibytes(a)} available" : ""));
        long inUse;
        using (var process = Process.GetCurrentProcess()) inUse = process.WorkingSet64;
        // What is already loaded (weights, runtime) is in use, not part of what is still available.
        bool Fits(MemoryEstimate e) => available is not { } free || e.Total - inUse <= free;
        if (Fits(estimate)) return estimate;
        var smallerChunk = new[] { 64, 32, 16, 8, 4, 2, 1 }.Where(n => n < (trainArgs.MiniBatchSize ?? trainArgs.PerDeviceTrainBatchSize * trainArgs.TrainGroupSize))
            .Select(n => (Size: n, Estimate: EstimateMemory(run, n, trainArgs.GradientCheckpointing)))
            .FirstOrDefault(c => Fits(c.Estimate));
        observer.Message($"warning: the run may be killed for memory: it needs {MemoryEstimate.Gibibytes(estimate.Total)} and " +
                         $"{MemoryEstimate.Gibibytes(available!.Value + inUse)} is available to it; " +
                         (smallerChunk.Estimate is { } fits
                             ? $"with --mini_batch_size {smallerChunk.Size} it would need about {MemoryEstimate.Gibibytes(fits.Total)}"
                             : "not even --mini_batch_size 1 fits: add --gradient_checkpointing or --dtype bf16, or train a smaller model"));
        return estimate;
    }

    /// <summary>Tells the observer (every step) and TensorBoard (at logging steps) how the step went.</summary>
    private void Report(StartedRun run, int step, TrainingStepResult result, double loss, bool logNow, Stopwatch clock)
    {
        double elapsed = clock.Elapsed.TotalSeconds;
        double stepsPerSecond = (step - run.StartStep) / Math.Max(elapsed, 1e-9);
        int samplesPerStep = run.Sampler.GlobalBatchSize * trainArgs.GradientAccumulationSteps;
        observer.Step(new TrainingStepLog(step, run.TotalSteps, (double)step / run.StepsPerEpoch, loss, result.LearningRate, result.GradNorm,
            stepsPerSecond * samplesPerStep, clock.Elapsed, TimeSpan.FromSeconds((run.LastStep - step) / Math.Max(stepsPerSecond, 1e-9))), logNow);
        if (!logNow) return;
        run.Tensorboard?.add_scalar("train/loss", (float)loss, step);
        run.Tensorboard?.add_scalar("train/learning_rate", (float)result.LearningRate, step);
        run.Tensorboard?.add_scalar("train/grad_norm", (float)result.GradNorm, step);
    }

    private IReadOnlyDictionary<string, double>? Evaluate(IEncoderEvaluator? evaluator, DenseRetriever retriever, int step, string label,
        SummaryWriter? tensorboard)
    {
        if (evaluator is null) return null;
        var metrics = evaluator.Evaluate(retriever.QueryEncoder, retriever.KeySide);
        observer.Evaluated(step, label, metrics);
        foreach (var (name, value) in metrics) tensorboard?.add_scalar("eval/" + name, (float)value, step);
        return metrics;
    }

    /// <summary>checkpoint-<paramref name="step"/> on rank 0, which every rank waits for.</summary>
    private void SaveCheckpoint(StartedRun run, int step, double learningRate)
    {
        EnsureFiniteWeights(run, step, learningRate);
        if (WritesOutput)
        {
            var path = CheckpointFolders.Publish(trainArgs.OutputDir, step, dir =>
            {
                WriteModelFiles(dir, run.Retriever.QueryEncoder, run.Retriever.KeyEncoder, run.Spec);
                run.Step.SaveOptimizerState(Path.Combine(dir, "optimizer.bin"));
                // Written last: a folder with trainer_state.json is complete.
                run.State(step).Save(Path.Combine(dir, CheckpointFolders.TrainerStateFile));
            });
            observer.Message($"saved {path}");
        }
        // No rank runs ahead of a checkpoint that is still being written.
        processGroup.Barrier();
    }

    /// <summary>The final model in output_dir itself: args.json and encoder/ (or query_encoder/ + key_encoder/).</summary>
    private void SaveFinal(DenseRetriever retriever, EncoderSpec spec)
    {
        CheckpointFolders.PublishFinal(trainArgs.OutputDir, dir => WriteModelFiles(dir, retriever.QueryEncoder, retriever.KeyEncoder, spec));
        observer.Message($"saved the final model in {trainArgs.OutputDir}");
    }

    private void WriteModelFiles(string dir, SentenceEncoder queryEncoder, SentenceEncoder? keyEncoder, EncoderSpec spec)
    {
        new RunArguments(modelArgs, trainArgs).Save(Path.Combine(dir, RunArguments.FileName));
        if (keyEncoder is null)
        {
            queryEncoder.Save(Path.Combine(dir, ModelFolder.TiedEncoderFolder), spec);
        }
        else
        {
            queryEncoder.Save(Path.Combine(dir, ModelFolder.QueryEncoderFolder), spec);
            keyEncoder.Save(Path.Combine(dir, ModelFolder.KeyEncoderFolder), spec);
        }
    }

    /// <summary>
    /// output_dir/metrics.json: the evaluation before training (absent after a resume), after it, and every evaluation
    /// of this run by step, at full precision (the console shows four decimals).
    /// </summary>
    private void SaveMetrics(IReadOnlyDictionary<string, double>? before, IReadOnlyDictionary<string, double>? after,
        IEnumerable<(int Step, IReadOnlyDictionary<string, double> Metrics)> evaluations)
    {
        static JsonObject Values(IReadOnlyDictionary<string, double> metrics) => new(metrics.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value)));
        var json = new JsonObject
        {
            ["before"] = before is null ? null : Values(before),
            ["after"] = after is null ? null : Values(after),
            ["evaluations"] = new JsonArray(evaluations.Select(e => (JsonNode)new JsonObject { ["step"] = e.Step, ["metrics"] = Values(e.Metrics) }).ToArray()),
        };
        FileUtil.WriteAllTextAtomic(Path.Combine(trainArgs.OutputDir, "metrics.json"), json.ToJsonString(JsonFormatting.TwoSpaces) + "\n");
    }
}
