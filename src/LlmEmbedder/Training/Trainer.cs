using System.Diagnostics;
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
public sealed record TrainingResult(string OutputDir, int Steps, IReadOnlyList<LossPoint> LossHistory,
    IReadOnlyDictionary<string, double>? MetricsBefore, IReadOnlyDictionary<string, double>? MetricsAfter);

/// <summary>
/// run_dense.py in one place: load and group the data, build the encoders, then per step: a batch from the
/// sampler → tokenize → embed queries and keys → retrieval loss → backward → clip → AdamW → schedule;
/// checkpoints every save_steps and the final model in output_dir.
/// </summary>
public sealed class Trainer
{
    private readonly ModelArguments modelArgs;
    private readonly TrainingArguments trainArgs;
    private readonly ITrainingObserver observer;
    private readonly Func<string, string> resolveModel;
    private readonly IProcessGroup processGroup;

    /// <param name="processGroup">The ranks of an mpirun job (data-parallel: each rank trains on its slice of every
    /// global batch; only rank 0 writes output_dir and evaluates); null = one process. <see cref="Run"/> calls its
    /// <see cref="IProcessGroup.AgreeOnStartup"/> once startup succeeded; a caller whose Run throws before that must
    /// call it with failedHere: true, or the other ranks wait forever (the CLI's DistributedLaunch does).</param>
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

    public TrainingResult Run(IEncoderEvaluator? evaluator = null)
    {
        ValidateArguments();
        // Everything that can fail on bad input happens before the first byte is written to output_dir.
        var data = LoadData();
        // How the trained model turns text into vectors, saved with every encoder folder and used by its evaluation.
        var spec = modelArgs.ToEncoderSpec(data.Datasets.Select(d => d.Task).Distinct());
        evaluator?.CheckInstruction(spec);
        var sampler = new BatchSampler(
            trainArgs.InbatchSameDataset is { } mode ? InBatchSameDatasetNames.Parse(mode) : InBatchSameDataset.None,
            data.Spans, trainArgs.PerDeviceTrainBatchSize, processGroup.WorldSize, processGroup.Rank, trainArgs.Seed);
        int stepsPerEpoch = Math.Max(1, sampler.StepsPerEpoch / trainArgs.GradientAccumulationSteps);
        int totalSteps = trainArgs.MaxSteps > 0 ? trainArgs.MaxSteps : (int)Math.Ceiling(trainArgs.NumTrainEpochs * stepsPerEpoch);
        if (sampler.StepsPerEpoch == 0)
            throw new EmbedderException($"not enough training samples for one batch of {sampler.GlobalBatchSize}");

        string? resumeFrom = trainArgs.ResumeFromCheckpoint is { } resume ? CheckpointFolders.Resolve(resume, trainArgs.OutputDir) : null;
        var queryDir = resumeFrom is null ? resolveModel(modelArgs.QueryEncoder) : CheckpointEncoderDir(resumeFrom, "query");
        using var queryEncoder = LoadEncoder(queryDir, spec);
        using var keyEncoder = modelArgs.TieEncoders ? null
            : LoadEncoder(resumeFrom is null ? resolveModel(modelArgs.KeyEncoder) : CheckpointEncoderDir(resumeFrom, "key"), spec);
        var keySide = keyEncoder ?? queryEncoder;
        var densePooler = spec.Dense ? StartDensePooler(queryEncoder, queryDir, fromCheckpoint: resumeFrom is not null) : null;
        // One dense pooler for both sides, as in the reference (it belongs to the retriever, not to an encoder).
        if (densePooler is not null) keyEncoder?.SetDense(densePooler, owned: false);

        var parameters = queryEncoder.Model.named_parameters()
            .Concat(keyEncoder?.Model.named_parameters() ?? [])
            .Concat(densePooler?.named_parameters().Select(p => (name: "dense_pooler." + p.name, p.parameter)) ?? []).ToList();
        using var optimizer = AdamWWithDecayGroups.Create(parameters.Select(p => (p.name, p.parameter)), trainArgs.LearningRate, trainArgs.WeightDecay);
        var schedule = LinearWarmupSchedule.FromRatio(trainArgs.LearningRate, trainArgs.WarmupRatio, totalSteps);
        var computeDtype = MixedPrecisionModel.ParseDtype(modelArgs.Dtype);
        using var queryCompute = new MixedPrecisionModel(queryEncoder.Model, computeDtype);
        using var keyCompute = keyEncoder is null ? null : new MixedPrecisionModel(keyEncoder.Model, computeDtype);
        queryCompute.Compute.GradientCheckpointing = trainArgs.GradientCheckpointing;
        if (keyCompute is not null) keyCompute.Compute.GradientCheckpointing = trainArgs.GradientCheckpointing;

        int startStep = 0;
        var lossHistory = new List<LossPoint>();
        if (resumeFrom is not null)
        {
            var state = TrainerState.Load(Path.Combine(resumeFrom, CheckpointFolders.TrainerStateFile));
            optimizer.load_state_dict(Path.Combine(resumeFrom, "optimizer.bin"));
            sampler.Restore(state.Sampler);
            startStep = state.GlobalStep;
            lossHistory.AddRange(state.LossHistory);
            queryCompute.SyncFromMaster();
            keyCompute?.SyncFromMaster();
            observer.Message($"resumed from {resumeFrom} at step {startStep}");
            if (state.TorchThreads is { } threads && threads != get_num_threads())
                observer.Message($"note: the checkpoint was written by a run with {threads} torch threads, this run has {get_num_threads()}; " +
                                 "its losses will match an uninterrupted run to float32 rounding (about 1e-5), not bit for bit");
        }

        // output_dir is made before the ranks agree that startup succeeded, so a folder that cannot be made is a startup
        // error like any other (one message, no MPI_Abort); if another rank failed, what this run created goes again.
        bool createdOutputDir = WritesOutput && !Directory.Exists(trainArgs.OutputDir);
        if (WritesOutput) Directory.CreateDirectory(trainArgs.OutputDir);
        var tensorboard = trainArgs.ReportTo == "tensorboard" && WritesOutput
            ? utils.tensorboard.SummaryWriter(Path.Combine(trainArgs.OutputDir, "runs")) : null;
        // Every rank read the same data and checkpoint; a rank that failed above reports it, the others stop here.
        if (processGroup.AgreeOnStartup(failedHere: false) is { } failedRank)
        {
            if (createdOutputDir) Directory.Delete(trainArgs.OutputDir, recursive: true);
            throw new StartupFailedElsewhereException(failedRank);
        }
        if (!WritesOutput) evaluator = null;   // rank 0 evaluates; the others wait for it in their next collective
        DescribeRun(data, sampler, totalSteps, stepsPerEpoch, computeDtype);

        var metricsBefore = startStep == 0 ? Evaluate(evaluator, queryEncoder, keySide, 0, "before training", tensorboard) : null;

        var clock = Stopwatch.StartNew();
        double lossSinceLog = 0;
        int stepsSinceLog = 0;
        int samplesPerStep = sampler.GlobalBatchSize * trainArgs.GradientAccumulationSteps;
        int lastStep = Math.Min(totalSteps, trainArgs.EarlyExitSteps ?? int.MaxValue);
        queryCompute.Train(true);
        keyCompute?.Train(true);
        for (int step = startStep + 1; step <= lastStep; step++)
        {
            using var scope = NewDisposeScope();
            // Dropout masks depend only on (seed, step, rank), so a resumed run draws the same ones; rank 0 draws a single process's.
            manual_seed(trainArgs.Seed * 1_000_003L + step + processGroup.Rank * 1_000_000_007L);
            double stepLoss = 0;
            for (int micro = 0; micro < trainArgs.GradientAccumulationSteps; micro++)
            {
                using var microScope = NewDisposeScope();
                var batch = sampler.Next();
                Tensor loss;
                // Our handles on the forward's intermediates go before backward: the graph keeps what backward needs and
                // frees it layer by layer as backward passes, as PyTorch does when Python drops its locals.
                using (NewDisposeScope())
                    loss = (BatchLoss(data, batch, queryEncoder, keySide, queryCompute.Compute, (keyCompute ?? queryCompute).Compute, spec)
                        / trainArgs.GradientAccumulationSteps).MoveToOuterDisposeScope();
                loss.backward();
                stepLoss += loss.item<float>();
            }
            queryCompute.MoveGradientsToMaster();
            keyCompute?.MoveGradientsToMaster();
            processGroup.AllReduceMeanGradients(parameters.Select(p => p.parameter));
            if (processGroup.WorldSize > 1) stepLoss = processGroup.AllReduceMean(stepLoss);
            double gradNorm = GradientClipping.ClipAndCheck(parameters.Select(p => p.parameter), trainArgs.MaxGradNorm, step);
            double learningRate = schedule.LearningRateAt(step - 1);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = learningRate;
            optimizer.step();
            optimizer.zero_grad();
            queryCompute.SyncFromMaster();
            keyCompute?.SyncFromMaster();

            lossHistory.Add(new LossPoint(step, stepLoss, learningRate));
            lossSinceLog += stepLoss;
            stepsSinceLog++;
            bool logNow = step % Math.Max(1, trainArgs.LoggingSteps) == 0 || step == lastStep;
            double elapsed = clock.Elapsed.TotalSeconds;
            double stepsPerSecond = (step - startStep) / Math.Max(elapsed, 1e-9);
            var log = new TrainingStepLog(step, totalSteps, (double)step / stepsPerEpoch, logNow ? lossSinceLog / stepsSinceLog : stepLoss,
                learningRate, gradNorm, stepsPerSecond * samplesPerStep, clock.Elapsed,
                TimeSpan.FromSeconds((lastStep - step) / Math.Max(stepsPerSecond, 1e-9)));
            observer.Step(log, logNow);
            if (logNow)
            {
                tensorboard?.add_scalar("train/loss", (float)log.Loss, step);
                tensorboard?.add_scalar("train/learning_rate", (float)learningRate, step);
                tensorboard?.add_scalar("train/grad_norm", (float)gradNorm, step);
                lossSinceLog = 0;
                stepsSinceLog = 0;
            }
            if (trainArgs.SaveSteps > 0 && step % trainArgs.SaveSteps == 0 && step < lastStep)
            {
                if (WritesOutput) SaveCheckpoint(step, totalSteps, queryEncoder, keyEncoder, spec, optimizer, sampler, lossHistory);
                // No rank runs ahead of a checkpoint that is still being written.
                processGroup.Barrier();
            }
            if (trainArgs.EvalSteps > 0 && step % trainArgs.EvalSteps == 0 && step < lastStep)
            {
                Evaluate(evaluator, queryEncoder, keySide, step, $"step {step}", tensorboard);
                queryCompute.Train(true);
                keyCompute?.Train(true);
            }
        }
        queryCompute.Train(false);
        keyCompute?.Train(false);

        if (WritesOutput)
        {
            SaveFinal(queryEncoder, keyEncoder, spec);
            new TrainerState(lastStep, totalSteps, sampler.State, lossHistory, get_num_threads()).Save(Path.Combine(trainArgs.OutputDir, CheckpointFolders.TrainerStateFile));
            LossCurve.Save(Path.Combine(trainArgs.OutputDir, "loss.png"), lossHistory);
        }
        var metricsAfter = Evaluate(evaluator, queryEncoder, keySide, lastStep, "after training", tensorboard);
        return new TrainingResult(trainArgs.OutputDir, lastStep, lossHistory, metricsBefore, metricsAfter);
    }

    private void ValidateArguments()
    {
        new RunArguments(modelArgs, trainArgs).Validate();
        if (modelArgs.TrainData.Length == 0) throw new EmbedderException("--train_data: no training files given");
        if (trainArgs.ReportTo is not ("none" or "tensorboard")) throw new EmbedderException($"--report_to '{trainArgs.ReportTo}': expected none or tensorboard");
        if (trainArgs.Device != "cpu") throw new EmbedderException($"--device '{trainArgs.Device}': only cpu is available in this build (TorchSharp-cpu)");
        if (modelArgs.TruncationSide is not ("right" or "left")) throw new EmbedderException($"--truncation_side '{modelArgs.TruncationSide}': expected right or left");
        MixedPrecisionModel.ParseDtype(modelArgs.Dtype);
        // Pooling, metric and instructions are checked where they are parsed, before any data is read.
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

    private SentenceEncoder LoadEncoder(string dir, EncoderSpec spec)
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

    /// <summary>
    /// The dense pooler trained with --pooling_method dense: the query encoder's (its folder's dense_pooler.bin or
    /// 2_Dense), else a fresh one seeded from --seed, like the reference's randomly initialised torch.nn.Linear.
    /// </summary>
    private DenseLayer StartDensePooler(SentenceEncoder queryEncoder, string queryDir, bool fromCheckpoint)
    {
        if (queryEncoder.Dense is { } loaded) return loaded;
        if (fromCheckpoint) throw new EmbedderException($"{queryDir}: has no {SentenceEncoder.DensePoolerFile} although --pooling_method has dense");
        observer.Message($"{queryDir}: no {SentenceEncoder.DensePoolerFile}; the dense pooler starts from random weights (seed {trainArgs.Seed})");
        using var generator = new Generator((ulong)trainArgs.Seed);
        var pooler = DenseLayer.CreateDensePooler(queryEncoder.Model.Config.HiddenSize, generator);
        queryEncoder.SetDense(pooler, owned: true);
        return pooler;
    }

    private static string CheckpointEncoderDir(string checkpoint, string side)
    {
        var untied = Path.Combine(checkpoint, side + "_encoder");
        return Directory.Exists(untied) ? untied : Path.Combine(checkpoint, "encoder");
    }

    /// <summary>The loss of one (micro-)batch: queries against the flattened [q0_pos, q0_negs…, q1_pos, …] keys.</summary>
    private Tensor BatchLoss(TrainingData data, SamplerBatch batch, SentenceEncoder queryEncoder, SentenceEncoder keyEncoder,
        BertModel queryModel, BertModel keyModel, EncoderSpec spec)
    {
        var groups = batch.RankIndices.Select(i => data.Groups[i]).ToList();
        var dataset = data.Datasets[groups[0].DatasetIndex];
        var config = dataset.Config;
        var queryTokens = Truncating(queryEncoder.Tokenizer).EncodeBatch(groups.Select(g => g.Query).ToList(), modelArgs.QueryMaxLength);
        var keyTokens = Truncating(keyEncoder.Tokenizer).EncodeBatch(groups.SelectMany(g => g.Keys).ToList(), modelArgs.KeyMaxLength);
        // The loss normalises for cos itself, in fp32.
        var queries = SentenceEncoder.Embed(queryModel, queryTokens, spec.Pooling, normalize: false, queryEncoder.Dense).to(ScalarType.Float32);
        var keys = SentenceEncoder.Embed(keyModel, keyTokens, spec.Pooling, normalize: false, keyEncoder.Dense).to(ScalarType.Float32);
        Tensor? teacher = groups.All(g => g.TeacherScores is not null)
            ? tensor(groups.SelectMany(g => g.TeacherScores!).ToArray(), [groups.Count, trainArgs.TrainGroupSize])
            : null;
        var loss = new RetrievalLoss(new RetrievalLossOptions
        {
            DenseMetric = spec.Metric,
            CosTemperature = trainArgs.CosTemperature,
            ContrastiveWeight = config.ContrastiveWeight,
            DistillWeight = config.DistillWeight,
            TeacherTemperature = config.TeacherTemperature,
            StudentTemperature = config.StudentTemperature,
            StableDistill = config.StableDistill,
        });
        // negative_cross_device: every rank's loss is over the global batch, through its own shard (docs/REFERENCE.md §4).
        var global = trainArgs.NegativeCrossDevice && processGroup.WorldSize > 1
            ? CrossDeviceBatch.FromShards(processGroup.Rank, queries, keys, teacher,
                processGroup.AllGather(queries), processGroup.AllGather(keys), teacher is null ? null : processGroup.AllGather(teacher))
            : null;
        return loss.Compute(queries, keys, teacher, global);
    }

    private BertTokenizer Truncating(BertTokenizer tokenizer) =>
        tokenizer.WithTruncationSide(modelArgs.TruncationSide == "left" ? TruncationSide.Left : TruncationSide.Right);

    private void DescribeRun(TrainingData data, BatchSampler sampler, int totalSteps, int stepsPerEpoch, ScalarType computeDtype)
    {
        foreach (var dataset in data.Datasets)
            observer.Message($"dataset {dataset.Name} ({dataset.SourceFile}): task {dataset.Task}, {dataset.Count} groups" +
                (dataset.SkippedRows > 0 ? $", {dataset.SkippedRows} bad rows skipped" : "") +
                (dataset.DroppedRows > 0 ? $", {dataset.DroppedRows} rows dropped" : ""));
        observer.Message($"{totalSteps} steps ({stepsPerEpoch}/epoch), global batch {sampler.GlobalBatchSize}{(processGroup.WorldSize > 1 ? $" ({processGroup.WorldSize} processes x {trainArgs.PerDeviceTrainBatchSize})" : "")} x group {trainArgs.TrainGroupSize}, " +
            $"batching {sampler.Mode}, compute {computeDtype}{(trainArgs.GradientCheckpointing ? " with gradient checkpointing" : "")}, " +
            $"lr {trainArgs.LearningRate}, {get_num_threads()} threads");
    }

    private IReadOnlyDictionary<string, double>? Evaluate(IEncoderEvaluator? evaluator, SentenceEncoder queryEncoder, SentenceEncoder keyEncoder,
        int step, string label, SummaryWriter? tensorboard)
    {
        if (evaluator is null) return null;
        var metrics = evaluator.Evaluate(queryEncoder, keyEncoder);
        observer.Evaluated(step, label, metrics);
        foreach (var (name, value) in metrics) tensorboard?.add_scalar("eval/" + name, (float)value, step);
        return metrics;
    }

    private void SaveCheckpoint(int step, int totalSteps, SentenceEncoder queryEncoder, SentenceEncoder? keyEncoder, EncoderSpec spec,
        AdamW optimizer, BatchSampler sampler, List<LossPoint> lossHistory)
    {
        var path = CheckpointFolders.Publish(trainArgs.OutputDir, Path.GetFileName(CheckpointFolders.PathFor(trainArgs.OutputDir, step)), dir =>
        {
            WriteModelFiles(dir, queryEncoder, keyEncoder, spec);
            optimizer.save_state_dict(Path.Combine(dir, "optimizer.bin"));
            // Written last: a folder with trainer_state.json is complete.
            new TrainerState(step, totalSteps, sampler.State, lossHistory, get_num_threads()).Save(Path.Combine(dir, CheckpointFolders.TrainerStateFile));
        });
        observer.Message($"saved {path}");
    }

    /// <summary>The final model in output_dir itself: args.json and encoder/ (or query_encoder/ + key_encoder/).</summary>
    private void SaveFinal(SentenceEncoder queryEncoder, SentenceEncoder? keyEncoder, EncoderSpec spec)
    {
        var staging = CheckpointFolders.Publish(trainArgs.OutputDir, ".final-staging", dir => WriteModelFiles(dir, queryEncoder, keyEncoder, spec));
        foreach (var entry in Directory.EnumerateFileSystemEntries(staging))
        {
            var destination = Path.Combine(trainArgs.OutputDir, Path.GetFileName(entry));
            if (Directory.Exists(entry)) CheckpointFolders.ReplaceDirectory(entry, destination);
            else File.Move(entry, destination, overwrite: true);
        }
        Directory.Delete(staging);
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
}
