using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// In-batch contrastive loss of the reference (docs/REFERENCE.md §4, <c>contrastive_weight</c>): cross-entropy
/// of each query over all B·G keys of the batch, its target being its own positive at index i·G; every
/// other key, including the other queries' positives and negatives, is a negative. Needs q [B, D] and
/// keys [B·G, D]; pass the gathered global batch for cross-device negatives.
/// </summary>
public sealed class ContrastiveLoss(EmbeddingSimilarity similarity)
{
    /// <summary>Mean over queries of the cross-entropy; a scalar.</summary>
    public Tensor Compute(Tensor queries, Tensor keys)
    {
        var groupSize = EmbeddingSimilarity.GroupSize(queries, keys);
        using var scope = NewDisposeScope();
        var scores = similarity.Scores(queries, keys);
        var positives = arange(queries.shape[0], dtype: ScalarType.Int64, device: scores.device).mul(groupSize);
        return nn.functional.cross_entropy(scores, positives).MoveToOuterDisposeScope();
    }
}
