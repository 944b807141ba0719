using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Modeling;

/// <summary>
/// One side's encoder as inference sees it: a tokenized batch in, fp32 sentence embeddings out, as its
/// <see cref="Spec"/> says (pooling, dense, normalisation). TorchSharp's <see cref="SentenceEncoder"/> is one; an
/// ONNX Runtime session over an exported model is another, so every command and the server run on either.
/// </summary>
public interface IEmbeddingModel : IDisposable
{
    BertTokenizer Tokenizer { get; }

    EncoderSpec Spec { get; }

    /// <summary>Length of each embedding.</summary>
    int Dimension { get; }

    /// <summary>Embeddings [batch.BatchSize × <see cref="Dimension"/>], row-major, in the batch's row order.</summary>
    float[] Embed(TokenBatch batch);
}

/// <summary>Batched inference over any <see cref="IEmbeddingModel"/>.</summary>
public static class EmbeddingModelExtensions
{
    /// <summary>
    /// Embeds texts: rows [texts.Count × Dimension] in input order, truncated to the role's max length. The texts
    /// already carry their instruction. Texts are batched by token length, longest first, so batches pad little.
    /// </summary>
    public static float[] Encode(this IEmbeddingModel model, IReadOnlyList<string> texts, EmbeddingRole role, int batchSize = 32,
        IProgress<int>? progress = null)
    {
        if (batchSize < 1) throw new EmbedderException($"batch size must be positive, got {batchSize}");
        int maxLength = model.Spec.MaxLength(role), dimension = model.Dimension;
        var lengths = texts.Select(t => model.Tokenizer.Encode(t, maxLength).Length).ToArray();
        var order = Enumerable.Range(0, texts.Count).OrderByDescending(i => lengths[i]).ToArray();
        var output = new float[(long)texts.Count * dimension];
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var rows = order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray();
            var embeddings = model.Embed(model.Tokenizer.EncodeBatch(rows.Select(i => texts[i]).ToList(), maxLength));
            for (int r = 0; r < rows.Length; r++)
                Array.Copy(embeddings, (long)r * dimension, output, (long)rows[r] * dimension, dimension);
            progress?.Report(start + rows.Length);
        }
        return output;
    }
}
