using LlmEmbedder.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// Scores queries against keys as the reference does for training (docs/REFERENCE.md §4, FlagEmbedding
/// <c>modeling_dense.py</c>): for <see cref="DenseMetric.Cos"/> both sides are L2-normalised and
/// S = Q·Kᵀ / cos_temperature; for <see cref="DenseMetric.Ip"/> and <see cref="DenseMetric.L2"/>,
/// S = Q·Kᵀ. Needs raw pooled embeddings: q [B, D], keys [B·G, D] flattened as
/// [q0_pos, q0_negs..., q1_pos, ...]. Normalising here is harmless when the encoder already did it
/// (normalisation is idempotent, and so is its gradient projection).
/// </summary>
public sealed class EmbeddingSimilarity
{
    public EmbeddingSimilarity(DenseMetric metric, double cosTemperature)
    {
        if (metric == DenseMetric.Cos && !(cosTemperature > 0))
            throw new EmbedderException($"cos_temperature must be > 0 with dense_metric cos (got {cosTemperature})");
        Metric = metric;
        CosTemperature = cosTemperature;
    }

    public DenseMetric Metric { get; }

    /// <summary>Divides cosine scores; ignored by the other metrics.</summary>
    public double CosTemperature { get; }

    /// <summary>Every query against every key: [B, N].</summary>
    public Tensor Scores(Tensor queries, Tensor keys)
    {
        CheckEmbeddings(queries, keys);
        using var scope = NewDisposeScope();
        var (q, k) = Prepare(queries, keys);
        return Scale(q.matmul(k.t())).MoveToOuterDisposeScope();
    }

    /// <summary>Each query against its own group of G keys only: [B, G] (row i = keys i·G .. (i+1)·G−1).</summary>
    public Tensor OwnGroupScores(Tensor queries, Tensor keys)
    {
        var groupSize = GroupSize(queries, keys);
        using var scope = NewDisposeScope();
        var (q, k) = Prepare(queries, keys);
        var grouped = k.view(q.shape[0], groupSize, q.shape[1]);
        var scores = grouped.matmul(q.unsqueeze(2)).squeeze(2);
        return Scale(scores).MoveToOuterDisposeScope();
    }

    /// <summary>G, the number of keys per query; keys must be a whole number of groups.</summary>
    internal static long GroupSize(Tensor queries, Tensor keys)
    {
        CheckEmbeddings(queries, keys);
        var (batch, keyCount) = (queries.shape[0], keys.shape[0]);
        if (batch == 0 || keyCount % batch != 0)
            throw new ArgumentException($"{keyCount} keys are not a whole number of groups for {batch} queries");
        return keyCount / batch;
    }

    /// <summary>Teacher scores must be [B, G] for B queries in groups of G keys.</summary>
    internal static void CheckTeacherScores(Tensor teacherScores, long batch, long groupSize)
    {
        if (teacherScores.dim() != 2 || teacherScores.shape[0] != batch || teacherScores.shape[1] != groupSize)
            throw new ArgumentException(
                $"teacher scores have shape [{string.Join(", ", teacherScores.shape)}], expected [{batch}, {groupSize}]");
    }

    private static void CheckEmbeddings(Tensor queries, Tensor keys)
    {
        if (queries.dim() != 2 || keys.dim() != 2 || queries.shape[1] != keys.shape[1])
            throw new ArgumentException(
                $"expected queries [B, D] and keys [N, D], got [{string.Join(", ", queries.shape)}] and [{string.Join(", ", keys.shape)}]");
    }

    private (Tensor Queries, Tensor Keys) Prepare(Tensor queries, Tensor keys) =>
        Metric == DenseMetric.Cos
            ? (nn.functional.normalize(queries, p: 2, dim: 1), nn.functional.normalize(keys, p: 2, dim: 1))
            : (queries, keys);

    private Tensor Scale(Tensor innerProducts) =>
        Metric == DenseMetric.Cos ? innerProducts.div(CosTemperature) : innerProducts;
}
