using System.Runtime.InteropServices;

namespace LlmEmbedder.Tokenization;

/// <summary>Sentence pairs for cross-encoders: [CLS] a [SEP] b [SEP], as Hugging Face's tokenizer(a, b, truncation=True).</summary>
public sealed partial class BertTokenizer
{
    /// <summary>[CLS], [SEP] and [SEP]: the tokens a pair adds.</summary>
    public const int PairSpecialTokens = 3;

    /// <summary>
    /// How many tokens of each text a pair keeps when the two together may hold <paramref name="budget"/> (max_length
    /// minus the 3 special tokens): Hugging Face tokenizers' longest_first rule (truncation=True), computed at once as
    /// the Rust library does (the Python tokenizer removes one token at a time and can end one token apart on ties).
    /// Nothing is cut when both fit; else, when the shorter text fits in half the budget, only the longer one is cut
    /// to what is left; else the first text gets budget/2 tokens and the second the rest, or the other way round when
    /// the first text is the longer one.
    /// </summary>
    public static (int First, int Second) PairLengths(int firstLength, int secondLength, int budget)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(budget);
        if (firstLength + secondLength <= budget) return (firstLength, secondLength);
        bool swapped = firstLength > secondLength;
        int shorter = Math.Min(firstLength, secondLength);
        int longer = shorter > budget ? shorter : Math.Max(shorter, budget - shorter);
        if (shorter + longer > budget)
        {
            shorter = budget / 2;
            longer = shorter + budget % 2;
        }
        return swapped ? (longer, shorter) : (shorter, longer);
    }

    /// <summary>
    /// Encodes (first, second) pairs as [CLS] first [SEP] second [SEP], at most <paramref name="maxLength"/> ids per
    /// row (<see cref="PairLengths"/>, each text cut on <see cref="TruncationSide"/>), padded to the longest row, with
    /// token type 0 for [CLS] first [SEP] and 1 for second [SEP].
    /// </summary>
    public TokenBatch EncodePairBatch(IReadOnlyList<(string First, string Second)> pairs, int maxLength = 512)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, PairSpecialTokens);
        var all = new List<int>();
        var ends = new int[pairs.Count];
        var firstSegmentEnds = new int[pairs.Count];
        int longest = 0;
        for (int row = 0; row < pairs.Count; row++)
        {
            var first = EncodeWithoutSpecialTokens(pairs[row].First);
            var second = EncodeWithoutSpecialTokens(pairs[row].Second);
            var (keepFirst, keepSecond) = PairLengths(first.Length, second.Length, maxLength - PairSpecialTokens);
            int start = all.Count;
            all.Add(ClsId);
            all.AddRange(Keep(first, keepFirst));
            all.Add(SepId);
            firstSegmentEnds[row] = all.Count - start;
            all.AddRange(Keep(second, keepSecond));
            all.Add(SepId);
            ends[row] = all.Count;
            longest = Math.Max(longest, all.Count - start);
        }

        var batch = TokenBatch.Pad(CollectionsMarshal.AsSpan(all), ends, longest, PadId);
        var tokenTypeIds = new long[pairs.Count * longest];
        for (int row = 0; row < pairs.Count; row++)
        {
            int length = ends[row] - (row == 0 ? 0 : ends[row - 1]);
            tokenTypeIds.AsSpan(row * longest + firstSegmentEnds[row], length - firstSegmentEnds[row]).Fill(1);
        }
        return batch with { TokenTypeIds = tokenTypeIds };
    }

    private ReadOnlySpan<int> Keep(int[] ids, int count) =>
        TruncationSide == TruncationSide.Right ? ids.AsSpan(0, count) : ids.AsSpan(ids.Length - count, count);
}
