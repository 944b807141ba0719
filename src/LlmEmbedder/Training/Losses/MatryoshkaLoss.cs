using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// The embedding sizes Matryoshka training teaches, largest first, and the weight of each size's loss
/// (<c>--matryoshka_dims</c>, <c>--matryoshka_weights</c>).
/// </summary>
public sealed record MatryoshkaOptions
{
    public MatryoshkaOptions(IReadOnlyList<int> dimensions, IReadOnlyList<double>? weights = null)
    {
        if (dimensions.Count == 0) throw new EmbedderException("--matryoshka_dims: give at least one dimension");
        if (weights is { Count: > 0 } && weights.Count != dimensions.Count)
            throw new EmbedderException($"--matryoshka_weights has {weights.Count} values for {dimensions.Count} --matryoshka_dims; give one weight per dimension (or none: 1 each)");
        foreach (var dimension in dimensions)
            if (dimension < 1) throw new EmbedderException($"--matryoshka_dims must be >= 1, got {dimension}");
        if (dimensions.Distinct().Count() != dimensions.Count)
            throw new EmbedderException($"--matryoshka_dims lists a dimension twice ({string.Join(" ", dimensions)})");
        var pairs = dimensions.Select((d, i) => (Dimension: d, Weight: weights is { Count: > 0 } ? weights[i] : 1.0)).OrderByDescending(p => p.Dimension).ToList();
        Dimensions = pairs.Select(p => p.Dimension).ToArray();
        Weights = pairs.Select(p => p.Weight).ToArray();
    }

    /// <summary>Descending.</summary>
    public IReadOnlyList<int> Dimensions { get; }

    /// <summary>In the order of <see cref="Dimensions"/>.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>The options --matryoshka_dims and --matryoshka_weights give, or null without dims.</summary>
    public static MatryoshkaOptions? From(TrainingArguments args) =>
        args.MatryoshkaDims.Length == 0 ? null : new MatryoshkaOptions(args.MatryoshkaDims, args.MatryoshkaWeights);

    /// <summary>Every dimension must be one the model's embeddings have.</summary>
    public void CheckFits(int embeddingDimension)
    {
        if (Dimensions[0] > embeddingDimension)
            throw new EmbedderException($"--matryoshka_dims {Dimensions[0]}: the model's embeddings have {embeddingDimension} dimensions");
    }
}

/// <summary>
/// Matryoshka representation learning (Kusupati et al. 2022; sentence-transformers' <c>MatryoshkaLoss</c>,
/// FlagEmbedding's <c>use_mrl</c>): the inner loss computed on the first d dimensions of every embedding, for each d
/// of <see cref="MatryoshkaOptions.Dimensions"/>, summed with their weights, so that a prefix of the vector is an
/// embedding of its own. Truncation happens on the raw pooled vectors the inner loss receives; for cos the inner loss
/// L2-normalises them again, as an inference that truncates a normalised embedding must (`--dimensions`).
/// A function of the embeddings alone: the encoders run once, whatever the number of sizes.
/// </summary>
public sealed class MatryoshkaLoss(MatryoshkaOptions options)
{
    /// <summary>The loss of one truncated batch: queries [B, d], keys [N, d], and the global batch truncated alike.</summary>
    public delegate Tensor InnerLoss(Tensor queries, Tensor keys, CrossDeviceBatch? global);

    public Tensor Compute(Tensor queries, Tensor keys, CrossDeviceBatch? global, InnerLoss inner)
    {
        using var scope = NewDisposeScope();
        Tensor? total = null;
        for (int i = 0; i < options.Dimensions.Count; i++)
        {
            int dimension = options.Dimensions[i];
            var loss = inner(First(queries, dimension), First(keys, dimension), global?.FirstDimensions(dimension)).mul(options.Weights[i]);
            total = total is null ? loss : total.add(loss);
        }
        return total!.MoveToOuterDisposeScope();
    }

    private static Tensor First(Tensor embeddings, int dimension) =>
        dimension == embeddings.shape[1] ? embeddings : embeddings.narrow(1, 0, dimension);
}
