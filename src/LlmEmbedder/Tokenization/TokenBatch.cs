namespace LlmEmbedder.Tokenization;

/// <summary>
/// Token ids and attention mask of a batch, row-major [BatchSize, SequenceLength]; rows shorter than the longest
/// are padded with the pad id and mask 0. <see cref="TokenTypeIds"/> (same layout) is set for sentence pairs:
/// 0 up to the first [SEP], 1 after it, 0 on padding; null means 0 everywhere.
/// </summary>
public sealed record TokenBatch(long[] InputIds, long[] AttentionMask, int BatchSize, int SequenceLength, long[]? TokenTypeIds = null);

/// <summary>Which end of a too-long text is cut off (HF truncation_side).</summary>
public enum TruncationSide
{
    Right,
    Left,
}
