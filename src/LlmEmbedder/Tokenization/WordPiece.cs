namespace LlmEmbedder.Tokenization;

/// <summary>
/// The WordPiece model: greedy longest-match-first of a word against the vocabulary, continuation pieces carrying
/// the "##" prefix, and the unknown token for the whole word when some part cannot be matched or the word is
/// longer than <see cref="MaxInputCharsPerWord"/> code points.
/// </summary>
internal sealed class WordPiece
{
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> wordStarts;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> continuations;
    private readonly int[] singleCharWordStarts = NoIds();
    private readonly int[] singleCharContinuations = NoIds();
    private readonly int longestWordStart;
    private readonly int longestContinuation;

    /// <param name="tokenToId">The vocabulary; where a token occurs twice the caller has already kept the last id, as HF does.</param>
    public WordPiece(IReadOnlyDictionary<string, int> tokenToId, int unkId, string continuingSubwordPrefix, int maxInputCharsPerWord)
    {
        var starts = new Dictionary<string, int>(tokenToId.Count, StringComparer.Ordinal);
        var continued = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in tokenToId)
        {
            starts[token] = id;
            longestWordStart = Math.Max(longestWordStart, token.Length);
            if (token.Length == 1) singleCharWordStarts[token[0]] = id;
            // Looking up the rest of a word in a table keyed without the prefix saves building "##" + piece each time.
            if (token.StartsWith(continuingSubwordPrefix, StringComparison.Ordinal))
            {
                var piece = token[continuingSubwordPrefix.Length..];
                continued[piece] = id;
                longestContinuation = Math.Max(longestContinuation, piece.Length);
                if (piece.Length == 1) singleCharContinuations[piece[0]] = id;
            }
        }
        Vocabulary = starts;
        wordStarts = starts.GetAlternateLookup<ReadOnlySpan<char>>();
        continuations = continued.GetAlternateLookup<ReadOnlySpan<char>>();
        UnkId = unkId;
        ContinuingSubwordPrefix = continuingSubwordPrefix;
        MaxInputCharsPerWord = maxInputCharsPerWord;
    }

    public IReadOnlyDictionary<string, int> Vocabulary { get; }

    public int UnkId { get; }

    public string ContinuingSubwordPrefix { get; }

    public int MaxInputCharsPerWord { get; }

    /// <summary>Appends the ids of one word (already normalized and split off by the pre-tokenizer).</summary>
    public void Tokenize(ReadOnlySpan<char> word, IntBuffer ids)
    {
        if (word.Length > MaxInputCharsPerWord && CountCodePoints(word) > MaxInputCharsPerWord)
        {
            ids.Append(UnkId);
            return;
        }
        var firstPiece = ids.Count;
        for (var start = 0; start < word.Length;)
        {
            var lookup = start == 0 ? wordStarts : continuations;
            var end = Math.Min(word.Length, start + (start == 0 ? longestWordStart : longestContinuation));
            // Ends inside a surrogate pair never match (vocab tokens are whole code points), so stepping by one
            // code unit visits the same candidates as stepping by one character.
            for (; end > start; end--)
            {
                // One-character pieces (every CJK character, punctuation) skip hashing.
                var id = end - start == 1
                    ? (start == 0 ? singleCharWordStarts : singleCharContinuations)[word[start]]
                    : lookup.TryGetValue(word[start..end], out var found) ? found : -1;
                if (id >= 0)
                {
                    ids.Append(id);
                    break;
                }
            }
            if (end == start)
            {
                ids.Truncate(firstPiece);
                ids.Append(UnkId);
                return;
            }
            start = end;
        }
    }

    private static int[] NoIds()
    {
        var ids = new int[char.MaxValue + 1];
        Array.Fill(ids, -1);
        return ids;
    }

    private static int CountCodePoints(ReadOnlySpan<char> text)
    {
        var count = text.Length;
        for (var i = 1; i < text.Length; i++)
            if (char.IsLowSurrogate(text[i]) && char.IsHighSurrogate(text[i - 1])) count--;
        return count;
    }
}
