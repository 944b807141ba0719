namespace LlmEmbedder.Tokenization;

/// <summary>
/// Token ids and attention mask of a batch, row-major [BatchSize, SequenceLength]; rows shorter than the longest
/// are padded with the pad id and mask 0.
/// </summary>
public sealed record TokenBatch(long[] InputIds, long[] AttentionMask, int BatchSize, int SequenceLength)
{
    /// <summary>The row's length without its padding: one past its last attended position.</summary>
    public int RowLength(int row)
    {
        var mask = AttentionMask.AsSpan(row * SequenceLength, SequenceLength);
        return mask.LastIndexOfAnyExcept(0L) + 1;
    }

    /// <summary>The given rows, in that order, padded only to the longest of them.</summary>
    public TokenBatch Rows(IReadOnlyList<int> rows)
    {
        int longest = rows.Count == 0 ? 0 : rows.Max(RowLength);
        var inputIds = new long[rows.Count * longest];
        var attentionMask = new long[rows.Count * longest];
        for (int i = 0; i < rows.Count; i++)
        {
            InputIds.AsSpan(rows[i] * SequenceLength, longest).CopyTo(inputIds.AsSpan(i * longest));
            AttentionMask.AsSpan(rows[i] * SequenceLength, longest).CopyTo(attentionMask.AsSpan(i * longest));
        }
        return new TokenBatch(inputIds, attentionMask, rows.Count, longest);
    }
}

/// <summary>Which end of a too-long text is cut off (HF truncation_side).</summary>
public enum TruncationSide
{
    Right,
    Left,
}
