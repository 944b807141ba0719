namespace LlmEmbedder.Tokenization;

/// <summary>
/// Token ids and attention mask of a batch, row-major [BatchSize, SequenceLength]; rows shorter than the longest
/// are padded with the pad id and mask 0. <see cref="TokenTypeIds"/> (same layout) is set for sentence pairs:
/// 0 up to the first [SEP], 1 after it, 0 on padding; null means 0 everywhere.
/// </summary>
public sealed record TokenBatch(long[] InputIds, long[] AttentionMask, int BatchSize, int SequenceLength, long[]? TokenTypeIds = null)
{
    /// <summary>A batch of the rows in <paramref name="ids"/> (row r ends at ends[r]), padded to <paramref name="longest"/>.</summary>
    public static TokenBatch Pad(ReadOnlySpan<int> ids, ReadOnlySpan<int> ends, int longest, int padId)
    {
        // Every element is written below, so the arrays need not be zeroed first (they are large: rows x longest).
        var inputIds = GC.AllocateUninitializedArray<long>(ends.Length * longest);
        var attentionMask = GC.AllocateUninitializedArray<long>(ends.Length * longest);
        for (var row = 0; row < ends.Length; row++)
        {
            var start = row == 0 ? 0 : ends[row - 1];
            var length = ends[row] - start;
            var rowIds = inputIds.AsSpan(row * longest, longest);
            var rowMask = attentionMask.AsSpan(row * longest, longest);
            for (var i = 0; i < length; i++)
                rowIds[i] = ids[start + i];
            rowIds[length..].Fill(padId);
            rowMask[..length].Fill(1);
            rowMask[length..].Clear();
        }
        return new TokenBatch(inputIds, attentionMask, ends.Length, longest);
    }

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
