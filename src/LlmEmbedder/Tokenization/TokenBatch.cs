namespace LlmEmbedder.Tokenization;

/// <summary>
/// Token ids and attention mask of a batch, row-major [BatchSize, SequenceLength]; rows shorter than the longest
/// are padded with the pad id and mask 0.
/// </summary>
public sealed record TokenBatch(long[] InputIds, long[] AttentionMask, int BatchSize, int SequenceLength);

/// <summary>Which end of a too-long text is cut off (HF truncation_side).</summary>
public enum TruncationSide
{
    Right,
    Left,
}
