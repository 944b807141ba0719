using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// The reference's <c>stable_distill</c> ranking loss (docs/REFERENCE.md §4; used by the qa and icl tasks of
/// llm-embedder). With w = softmax(teacher_scores) (no temperature) it sums over the group positions
/// i = 0..G−1 (the data layer orders each group positive first, then negatives by teacher score):
/// mean over queries j of w[j, i] · CE(S_j, j·G + i), where in step i the keys j·G .. j·G+i−1 of query
/// j's own group (the ones already ranked) are masked out of its row with the dtype minimum. Keys of
/// other queries are never masked: they stay negatives in every step. The sum is not divided by G.
/// Needs q [B, D], keys [B·G, D], teacher scores [B, G]; pass the gathered global batch for
/// cross-device negatives.
/// </summary>
public sealed class StableDistillLoss(EmbeddingSimilarity similarity)
{
    public Tensor Compute(Tensor queries, Tensor keys, Tensor teacherScores)
    {
        var groupSize = EmbeddingSimilarity.GroupSize(queries, keys);
        var batch = queries.shape[0];
        EmbeddingSimilarity.CheckTeacherScores(teacherScores, batch, groupSize);
        using var scope = NewDisposeScope();
        var scores = similarity.Scores(queries, keys);
        var weights = nn.functional.softmax(teacherScores.to(scores.dtype, scores.device).detach(), dim: 1);
        var groupStarts = arange(batch, dtype: ScalarType.Int64, device: scores.device).mul(groupSize);
        // Position of each key inside the row's own group: 0..G−1 for its own keys, outside for the rest.
        var positionInOwnGroup = arange(keys.shape[0], dtype: ScalarType.Int64, device: scores.device)
            .unsqueeze(0).sub(groupStarts.unsqueeze(1));
        var maskValue = finfo(scores.dtype).min;

        var total = zeros([], scores.dtype, scores.device);
        for (long position = 0; position < groupSize; position++)
        {
            var alreadyRanked = positionInOwnGroup.ge(0).logical_and(positionInOwnGroup.lt(position));
            var rowScores = scores.masked_fill(alreadyRanked, maskValue);
            var perQuery = nn.functional.cross_entropy(rowScores, groupStarts.add(position), reduction: nn.Reduction.None);
            total = total.add(weights.select(1, position).mul(perQuery).mean());
        }
        return total.MoveToOuterDisposeScope();
    }
}
