using System.Diagnostics;
using LlmEmbedder.Distributed;
using LlmEmbedder.Training.Optimization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>How a <see cref="TrainingStep"/> updates the weights (run_dense's optimisation arguments).</summary>
public sealed record TrainingStepOptions
{
    /// <summary>AdamW's rate until the first step sets the schedule's.</summary>
    public double LearningRate { get; init; } = 5e-6;

    public double WeightDecay { get; init; } = 0.01;

    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>With the step number and the rank, chooses the dropout masks.</summary>
    public long Seed { get; init; } = 42;
}

/// <summary>What one step did. Forward, backward (with the gradients' hand-over and all-reduce) and update are wall times.</summary>
public sealed record TrainingStepResult(double Loss, double GradNorm, double LearningRate, TimeSpan Forward, TimeSpan Backward, TimeSpan Update);

/// <summary>
/// One optimisation step of a <see cref="DenseRetriever"/>, the same for the trainer and the benchmark: per micro-batch
/// loss → backward (gradients accumulate); gradients to the fp32 weights, averaged over the ranks, clipped; AdamW at
/// the given rate; compute copies refreshed. A loss or gradient norm that is not finite is an error before the update,
/// so the weights stay those of the step before. Owns the optimizer, whose state is part of a checkpoint.
/// </summary>
public sealed class TrainingStep : IDisposable
{
    private readonly DenseRetriever retriever;
    private readonly TrainingStepOptions options;
    private readonly AdamW optimizer;
    private readonly List<Parameter> parameters;

    public TrainingStep(DenseRetriever retriever, TrainingStepOptions options)
    {
        this.retriever = retriever;
        this.options = options;
        parameters = retriever.Parameters.Select(p => p.Parameter).ToList();
        optimizer = AdamWWithDecayGroups.Create(retriever.Parameters, options.LearningRate, options.WeightDecay);
    }

    /// <summary>
    /// Step <paramref name="step"/> (1-based, as logged) over <paramref name="microBatches"/> (one per gradient accumulation
    /// step); the loss is their mean, and with several processes the mean over the ranks too.
    /// </summary>
    public TrainingStepResult Run(int step, IReadOnlyList<RetrievalBatch> microBatches, double learningRate)
    {
        using var scope = NewDisposeScope();
        var group = retriever.ProcessGroup;
        // Dropout masks depend only on (seed, step, rank), so a resumed run draws the same ones; rank 0 draws a single process's.
        manual_seed(options.Seed * 1_000_003L + step + group.Rank * 1_000_000_007L);
        TimeSpan forward = TimeSpan.Zero, backward = TimeSpan.Zero;
        double loss = 0;
        foreach (var batch in microBatches)
        {
            var pass = retriever.ForwardBackward(batch, microBatches.Count);
            loss += pass.Loss;
            forward += pass.Forward;
            backward += pass.Backward;
        }
        var clock = Stopwatch.StartNew();
        retriever.MoveGradientsToMaster();
        group.AllReduceMeanGradients(parameters);
        if (group.WorldSize > 1) loss = group.AllReduceMean(loss);
        backward += clock.Elapsed;
        clock.Restart();

        double gradNorm = GradientClipping.Clip(parameters, options.MaxGradNorm);
        // Every rank holds the same mean loss and gradients, so all of them stop here alike, before the update.
        string? notFinite = !double.IsFinite(loss) ? $"the loss is not finite ({Format(loss)})"
            : !double.IsFinite(gradNorm) ? $"the gradient norm is not finite ({Format(gradNorm)})"
            : null;
        if (notFinite is not null)
        {
            optimizer.zero_grad();
            throw new EmbedderException($"step {step}: {notFinite} at learning rate {Format(learningRate)}; lower --learning_rate or check the data");
        }
        foreach (var parameterGroup in optimizer.ParamGroups) parameterGroup.LearningRate = learningRate;
        optimizer.step();
        optimizer.zero_grad();
        retriever.SyncFromMaster();
        return new TrainingStepResult(loss, gradNorm, learningRate, forward, backward, clock.Elapsed);
    }

    /// <summary>False when an fp32 weight is NaN or infinite (an update overflowed).</summary>
    public bool WeightsAreFinite()
    {
        using var scope = NewDisposeScope();
        return parameters.All(p => isfinite(p).all().item<bool>());
    }

    /// <summary>A number as the messages about non-finite steps show it: "NaN", "inf", "1E+06", "2E-05".</summary>
    public static string Format(double value) => value switch
    {
        double.NaN => "NaN",
        double.PositiveInfinity => "inf",
        double.NegativeInfinity => "-inf",
        _ => value.ToString("G4", System.Globalization.CultureInfo.InvariantCulture),
    };

    public void SaveOptimizerState(string path) => optimizer.save_state_dict(path);

    /// <summary>Restores AdamW's moments and step counts (a resumed run), then the compute copies from the loaded weights.</summary>
    public void LoadOptimizerState(string path)
    {
        optimizer.load_state_dict(path);
        retriever.SyncFromMaster();
    }

    public void Dispose() => optimizer.Dispose();
}
