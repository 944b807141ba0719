namespace LlmEmbedder.Tokenization;

/// <summary>The names of the special tokens (tokenizer_config.json / special_tokens_map.json).</summary>
public sealed record BertSpecialTokens(
    string Unk = "[UNK]",
    string Sep = "[SEP]",
    string Pad = "[PAD]",
    string Cls = "[CLS]",
    string? Mask = "[MASK]");

/// <summary>
/// A BERT WordPiece tokenizer that gives the ids of Hugging Face's BertTokenizerFast (the Rust tokenizers library):
/// special tokens written in the text are matched first, then the text is normalized (<see cref="BertNormalizerOptions"/>),
/// split on whitespace and punctuation, and each word is split into WordPiece pieces.
/// Immutable and thread-safe; the Encode methods reuse per-thread scratch buffers.
/// Hand-written rather than wrapping FastBertTokenizer because exact parity needs HF's Unicode 9.0 character classes,
/// supplementary-plane CJK handling, NFD for Hangul and special-token splitting, which that library does differently
/// (README.md in this folder has the numbers).
/// </summary>
public sealed partial class BertTokenizer
{
    private readonly string?[] idToToken;
    private readonly Dictionary<string, int> tokenToId;
    private readonly WordPiece wordPiece;
    private readonly BertNormalizer normalizer;
    private readonly AddedTokenMatcher rawAddedTokens;
    private readonly AddedTokenMatcher normalizedAddedTokens;

    [ThreadStatic] private static Scratch? threadScratch;

    private BertTokenizer(
        string source,
        string?[] idToToken,
        Dictionary<string, int> vocab,
        BertNormalizerOptions normalization,
        BertSpecialTokens specialTokens,
        IReadOnlyList<AddedToken> addedTokens,
        int modelMaxLength,
        string continuingSubwordPrefix = "##",
        int maxInputCharsPerWord = 100)
    {
        this.idToToken = idToToken;
        tokenToId = new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        foreach (var added in addedTokens)
            tokenToId[added.Content] = added.Id;
        normalizer = new BertNormalizer(normalization);
        AddedTokens = addedTokens;
        SpecialTokens = specialTokens;
        ModelMaxLength = modelMaxLength;

        int Require(string token) => tokenToId.TryGetValue(token, out var id) ? id
            : throw new EmbedderException($"{source}: vocab has no {token} token");
        UnkId = Require(specialTokens.Unk);
        ClsId = Require(specialTokens.Cls);
        SepId = Require(specialTokens.Sep);
        PadId = Require(specialTokens.Pad);
        MaskId = specialTokens.Mask is { } mask && tokenToId.TryGetValue(mask, out var maskId) ? maskId : null;

        wordPiece = new WordPiece(vocab, UnkId, continuingSubwordPrefix, maxInputCharsPerWord);
        rawAddedTokens = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        normalizedAddedTokens = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized).Select(t => (NormalizeAlone(t.Content), t)));
    }

    public int PadId { get; }

    public int ClsId { get; }

    public int SepId { get; }

    public int UnkId { get; }

    /// <summary>The [MASK] id, or null when the vocabulary has none.</summary>
    public int? MaskId { get; }

    /// <summary>Number of ids (highest id + 1), counting added tokens beyond the vocab file.</summary>
    public int VocabSize => idToToken.Length;

    /// <summary>tokenizer_config.json model_max_length (512 when the folder does not say).</summary>
    public int ModelMaxLength { get; }

    public TruncationSide TruncationSide { get; private init; } = TruncationSide.Right;

    public BertNormalizerOptions Normalization => normalizer.Options;

    public BertSpecialTokens SpecialTokens { get; }

    public IReadOnlyList<AddedToken> AddedTokens { get; }

    public string ContinuingSubwordPrefix => wordPiece.ContinuingSubwordPrefix;

    public int MaxInputCharsPerWord => wordPiece.MaxInputCharsPerWord;

    /// <summary>The same tokenizer cutting too-long texts on the given side.</summary>
    public BertTokenizer WithTruncationSide(TruncationSide side) =>
        side == TruncationSide ? this : new BertTokenizer(this) { TruncationSide = side };

    private BertTokenizer(BertTokenizer other)
    {
        idToToken = other.idToToken;
        tokenToId = other.tokenToId;
        wordPiece = other.wordPiece;
        normalizer = other.normalizer;
        rawAddedTokens = other.rawAddedTokens;
        normalizedAddedTokens = other.normalizedAddedTokens;
        (PadId, ClsId, SepId, UnkId, MaskId) = (other.PadId, other.ClsId, other.SepId, other.UnkId, other.MaskId);
        (ModelMaxLength, AddedTokens, SpecialTokens) = (other.ModelMaxLength, other.AddedTokens, other.SpecialTokens);
    }

    public string? IdToToken(int id) => (uint)id < (uint)idToToken.Length ? idToToken[id] : null;

    public int? TokenToId(string token) => tokenToId.TryGetValue(token, out var id) ? id : null;

    /// <summary>
    /// [CLS] text [SEP] as ids, at most <paramref name="maxLength"/> of them (the special tokens count),
    /// cut on <see cref="TruncationSide"/>.
    /// </summary>
    public int[] Encode(string text, int maxLength = 512)
    {
        var scratch = Scratch.Get();
        scratch.Row.Clear();
        AppendEncoded(text, maxLength, scratch.Row);
        return scratch.Row.Span.ToArray();
    }

    /// <summary>Encodes each text as <see cref="Encode"/> does and pads the rows to the longest one.</summary>
    public TokenBatch EncodeBatch(IReadOnlyList<string> texts, int maxLength = 512)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var scratch = Scratch.Get();
        var all = scratch.Batch;
        all.Clear();
        var ends = new int[texts.Count];
        var longest = 0;
        for (var row = 0; row < texts.Count; row++)
        {
            var start = all.Count;
            AppendEncoded(texts[row], maxLength, all);
            ends[row] = all.Count;
            longest = Math.Max(longest, all.Count - start);
        }
        return TokenBatch.Pad(all.Span, ends, longest, PadId);
    }

    /// <summary>Pads rows already encoded (by <see cref="Encode"/>) into one batch.</summary>
    public TokenBatch PadBatch(IReadOnlyList<int[]> rows)
    {
        var ends = new int[rows.Count];
        int total = 0, longest = 0;
        for (var row = 0; row < rows.Count; row++)
        {
            total += rows[row].Length;
            ends[row] = total;
            longest = Math.Max(longest, rows[row].Length);
        }
        var all = new int[total];
        for (var row = 0; row < rows.Count; row++) rows[row].CopyTo(all, ends[row] - rows[row].Length);
        return TokenBatch.Pad(all, ends, longest, PadId);
    }

    /// <summary>Appends [CLS] ids [SEP] for one text, truncated to maxLength.</summary>
    private void AppendEncoded(string text, int maxLength, IntBuffer output)
    {
        var ids = EncodeToScratch(text, maxLength);
        var keep = Math.Min(ids.Count, maxLength - 2);
        var first = TruncationSide == TruncationSide.Right ? 0 : ids.Count - keep;
        output.Append(ClsId);
        output.Append(ids.Span.Slice(first, keep));
        output.Append(SepId);
    }

    /// <summary>The WordPiece tokens of the text, without [CLS]/[SEP] and without truncation.</summary>
    public string[] Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = Scratch.Get().Ids;
        ids.Clear();
        EncodeInto(text, ids, int.MaxValue);
        var tokens = new string[ids.Count];
        for (var i = 0; i < tokens.Length; i++)
            tokens[i] = idToToken[ids[i]] ?? SpecialTokens.Unk;
        return tokens;
    }

    /// <summary>The ids of the text without [CLS]/[SEP] and without truncation.</summary>
    public int[] EncodeWithoutSpecialTokens(string text) => EncodeToScratch(text, int.MaxValue).Span.ToArray();

    /// <summary>Ids of the text in the thread's scratch buffer; with right truncation, stops once maxLength - 2 are known.</summary>
    private IntBuffer EncodeToScratch(string text, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        var ids = Scratch.Get().Ids;
        ids.Clear();
        var enough = TruncationSide == TruncationSide.Right && maxLength != int.MaxValue ? maxLength - 2 : int.MaxValue;
        EncodeInto(text, ids, enough);
        return ids;
    }

    private void EncodeInto(ReadOnlySpan<char> text, IntBuffer ids, int enough)
    {
        var position = 0;
        if (!rawAddedTokens.IsEmpty)
        {
            while (ids.Count < enough && rawAddedTokens.TryFindNext(text, position, out var token, out var start, out var end))
            {
                EncodeSegment(text[position..start], ids, enough);
                ids.Append(token.Id);
                position = end;
            }
        }
        if (ids.Count < enough)
            EncodeSegment(text[position..], ids, enough);
    }

    /// <summary>
    /// Normalizes and tokenizes text that holds no raw added token. Long text is cut into chunks after a whitespace
    /// or CJK character, where neither normalization nor word splitting looks across, so truncation can stop early.
    /// </summary>
    private void EncodeSegment(ReadOnlySpan<char> text, IntBuffer ids, int enough)
    {
        const int ChunkLength = 2048;
        var scratch = Scratch.Get();
        while (!text.IsEmpty && ids.Count < enough)
        {
            var chunkLength = normalizedAddedTokens.IsEmpty ? ChunkEnd(text, ChunkLength) : text.Length;
            normalizer.Normalize(text[..chunkLength], scratch.Normalized, scratch.PendingMarks);
            var normalized = scratch.Normalized.Span;
            if (normalizedAddedTokens.IsEmpty)
            {
                SplitWords(normalized, ids, enough);
            }
            else
            {
                var position = 0;
                while (normalizedAddedTokens.TryFindNext(normalized, position, out var token, out var start, out var end))
                {
                    SplitWords(normalized[position..start], ids, enough);
                    ids.Append(token.Id);
                    position = end;
                }
                SplitWords(normalized[position..], ids, enough);
            }
            text = text[chunkLength..];
        }
    }

    private int ChunkEnd(ReadOnlySpan<char> text, int atLeast)
    {
        for (var i = atLeast; i < text.Length; i++)
        {
            var flags = CharClasses.Flags(text[i]);
            // Whitespace that clean_text deletes (vertical tab, form feed, U+0085) does not separate words.
            var separates = (flags & CharClasses.CharFlags.Whitespace) != 0
                ? (flags & CharClasses.CharFlags.Control) == 0 || text[i] is '\t' or '\n' or '\r' || !Normalization.CleanText
                : (flags & CharClasses.CharFlags.Chinese) != 0 && Normalization.TokenizeChineseChars;
            if (separates) return i + 1;
        }
        return text.Length;
    }

    /// <summary>The BertPreTokenizer: words end at whitespace; each punctuation character is a word of its own.</summary>
    private void SplitWords(ReadOnlySpan<char> text, IntBuffer ids, int enough)
    {
        const CharClasses.CharFlags Boundary = CharClasses.CharFlags.Whitespace | CharClasses.CharFlags.Punctuation;
        var wordStart = -1;
        for (var i = 0; i < text.Length;)
        {
            int codePoint = text[i];
            var width = 1;
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                codePoint = char.ConvertToUtf32(text[i], text[i + 1]);
                width = 2;
            }
            var flags = CharClasses.Flags(codePoint);
            if ((flags & Boundary) != 0)
            {
                if (wordStart >= 0)
                {
                    wordPiece.Tokenize(text[wordStart..i], ids);
                    wordStart = -1;
                    if (ids.Count >= enough) return;
                }
                if ((flags & CharClasses.CharFlags.Punctuation) != 0)
                    wordPiece.Tokenize(text.Slice(i, width), ids);
            }
            else if (wordStart < 0)
            {
                wordStart = i;
            }
            i += width;
        }
        if (wordStart >= 0)
            wordPiece.Tokenize(text[wordStart..], ids);
    }

    /// <summary>How a normalized added token's content reads after normalization (what HF matches it against).</summary>
    private string NormalizeAlone(string content)
    {
        var output = new CharBuffer();
        normalizer.Normalize(content, output, new IntBuffer());
        return output.Span.ToString();
    }

    private sealed class Scratch
    {
        public readonly CharBuffer Normalized = new();
        public readonly IntBuffer PendingMarks = new();
        public readonly IntBuffer Ids = new();
        public readonly IntBuffer Row = new();
        public readonly IntBuffer Batch = new();

        public static Scratch Get() => threadScratch ??= new Scratch();
    }
}
