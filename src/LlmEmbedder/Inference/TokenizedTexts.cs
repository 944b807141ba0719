using LlmEmbedder.Modeling;

namespace LlmEmbedder.Inference;

/// <summary>
/// The texts of one call as the model will see them: each with its instruction, tokenized for one side with
/// [CLS] and [SEP], cut to the side's max length. <see cref="TokenCount"/> is what the call costs (the OpenAI API's
/// prompt_tokens).
/// </summary>
public sealed class TokenizedTexts
{
    internal TokenizedTexts(EmbeddingRole role, int[][] rows)
    {
        Role = role;
        Rows = rows;
        TokenCount = rows.Sum(r => r.Length);
    }

    public EmbeddingRole Role { get; }

    public int Count => Rows.Count;

    /// <summary>Tokens of every text, special tokens and instruction included.</summary>
    public int TokenCount { get; }

    /// <summary>The token ids of each text.</summary>
    public IReadOnlyList<int[]> Rows { get; }
}

/// <summary>Embeddings of a call: row-major [<see cref="Count"/> × <see cref="Dimension"/>], in input order.</summary>
/// <param name="TokenCount">Tokens the model read for them (<see cref="TokenizedTexts.TokenCount"/>).</param>
public sealed record Embeddings(float[] Values, int Count, int Dimension, int TokenCount)
{
    public ReadOnlyMemory<float> Row(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Values.AsMemory(index * Dimension, Dimension);
    }

    /// <summary>One array per text.</summary>
    public float[][] ToArrays() => Enumerable.Range(0, Count).Select(i => Row(i).ToArray()).ToArray();
}

/// <summary>One forward pass of the batcher: for metrics and logs.</summary>
/// <param name="PaddedTokens">Rows × the longest row: what the model computed.</param>
/// <param name="Waiting">Calls still waiting after this batch was taken.</param>
public sealed record BatchStatistics(EmbeddingRole Role, int Texts, int Tokens, int PaddedTokens, TimeSpan Elapsed, int Waiting);

/// <summary>A call refused because <see cref="TextEmbedderOptions.MaxQueue"/> calls are already waiting.</summary>
public sealed class QueueFullException(int maxQueue)
    : EmbedderException($"the embedding queue is full ({maxQueue} calls waiting); try again shortly")
{
    public int MaxQueue { get; } = maxQueue;
}

/// <summary>A text longer than the side's max length, with truncation off.</summary>
public sealed class InputTooLongException(int index, int tokens, int maxLength)
    : EmbedderException($"input {index} has {tokens} tokens, more than the model's {maxLength}; shorten it or enable truncation")
{
    public int Index { get; } = index;
    public int Tokens { get; } = tokens;
    public int MaxLength { get; } = maxLength;
}
