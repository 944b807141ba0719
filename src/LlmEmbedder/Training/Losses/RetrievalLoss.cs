using LlmEmbedder.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// The training loss of the reference (docs/REFERENCE.md §4, <c>_compute_loss</c> of FlagEmbedding's
/// <c>modeling_dense.py</c>). Contrastive is active iff contrastive_weight &gt; 0; distillation iff the
/// batch has teacher scores and distill_weight &gt; 0 (<see cref="StableDistillLoss"/> with
/// stable_distill, else <see cref="DistillKLLoss"/>). Both active: cw·C + dw·D; one active: that loss
/// unweighted; neither: an error. With a <see cref="CrossDeviceBatch"/>, the contrastive and stable
/// losses run over the global batch; the KL loss only ever sees the local groups, as in the reference.
/// With <see cref="RetrievalLossOptions.Matryoshka"/>, all of that is the inner loss of a <see cref="MatryoshkaLoss"/>.
/// </summary>
public sealed class RetrievalLoss
{
    private readonly ContrastiveLoss contrastive;
    private readonly StableDistillLoss stableDistill;
    private readonly DistillKLLoss distillKL;

    public RetrievalLoss(RetrievalLossOptions options)
    {
        Options = options;
        var similarity = new EmbeddingSimilarity(options.DenseMetric, options.CosTemperature);
        contrastive = new ContrastiveLoss(similarity);
        stableDistill = new StableDistillLoss(similarity);
        distillKL = new DistillKLLoss(similarity, options.TeacherTemperature, options.StudentTemperature);
    }

    public RetrievalLossOptions Options { get; }

    /// <summary>Why no loss term would be active with these weights, or null when one is; training data checks it before the first step.</summary>
    public static string? NoActiveLoss(double contrastiveWeight, double distillWeight, bool hasTeacherScores) =>
        contrastiveWeight > 0 || (hasTeacherScores && distillWeight > 0)
            ? null
            : $"no training loss is active: contrastive_weight is {contrastiveWeight} (must be > 0 for the contrastive loss) and "
              + (hasTeacherScores ? $"distill_weight is {distillWeight} (must be > 0 for distillation)" : "there are no teacher_scores (needed for distillation)");

    /// <summary>
    /// The scalar loss of one batch: local queries [B, D], keys [B·G, D], teacher scores [B, G] or null,
    /// and, with several processes and negative_cross_device, the gathered global batch.
    /// </summary>
    public Tensor Compute(Tensor queries, Tensor keys, Tensor? teacherScores, CrossDeviceBatch? global = null) =>
        Options.Matryoshka is { } matryoshka
            ? new MatryoshkaLoss(matryoshka).Compute(queries, keys, global, (q, k, g) => ComputeWhole(q, k, teacherScores, g))
            : ComputeWhole(queries, keys, teacherScores, global);

    private Tensor ComputeWhole(Tensor queries, Tensor keys, Tensor? teacherScores, CrossDeviceBatch? global)
    {
        var distillActive = teacherScores is not null && Options.DistillWeight > 0;
        var contrastiveActive = Options.ContrastiveWeight > 0;
        if (NoActiveLoss(Options.ContrastiveWeight, Options.DistillWeight, teacherScores is not null) is { } problem)
            throw new EmbedderException(problem);
        if (global is not null && (global.TeacherScores is null) != (teacherScores is null))
            throw new ArgumentException("the gathered batch and the local batch disagree on having teacher scores");

        var globalQueries = global?.Queries ?? queries;
        var globalKeys = global?.Keys ?? keys;

        using var scope = NewDisposeScope();
        Tensor? distill = null;
        if (distillActive)
            distill = Options.StableDistill
                ? stableDistill.Compute(globalQueries, globalKeys, global?.TeacherScores ?? teacherScores!)
                : distillKL.Compute(queries, keys, teacherScores!);
        var contrast = contrastiveActive ? contrastive.Compute(globalQueries, globalKeys) : null;

        var loss = (contrast, distill) switch
        {
            ({ } c, { } d) => c.mul(Options.ContrastiveWeight).add(d.mul(Options.DistillWeight)),
            ({ } c, null) => c,
            (null, { } d) => d,
            _ => throw new InvalidOperationException("unreachable: checked above"),
        };
        return loss.MoveToOuterDisposeScope();
    }
}
