namespace LlmEmbedder.Tokenization;

/// <summary>
/// A token matched in the text before normalization and word splitting (HF "added_tokens": the special tokens
/// such as [CLS] and [SEP], so that a literal "[SEP]" in the text becomes the [SEP] id).
/// <see cref="Normalized"/> tokens are looked for in the normalized text instead of the raw text;
/// <see cref="LStrip"/>/<see cref="RStrip"/> swallow the whitespace on that side.
/// </summary>
public sealed record AddedToken(
    int Id,
    string Content,
    bool Special = true,
    bool Normalized = false,
    bool LStrip = false,
    bool RStrip = false);

/// <summary>Leftmost-longest matching of a set of added tokens, as HF's Aho-Corasick split does.</summary>
internal sealed class AddedTokenMatcher
{
    private readonly (string Content, AddedToken Token)[] byLengthDescending;
    private readonly string firstChars;

    public AddedTokenMatcher(IEnumerable<(string Content, AddedToken Token)> tokens)
    {
        byLengthDescending = [.. tokens.Where(t => t.Content.Length > 0).OrderByDescending(t => t.Content.Length)];
        firstChars = new string([.. byLengthDescending.Select(t => t.Content[0]).Distinct()]);
    }

    public bool IsEmpty => byLengthDescending.Length == 0;

    /// <summary>
    /// Finds the next match at or after <paramref name="from"/>: returns the token and the span it covers
    /// (widened over whitespace for lstrip/rstrip, but never back before <paramref name="from"/>).
    /// </summary>
    public bool TryFindNext(ReadOnlySpan<char> text, int from, out AddedToken token, out int start, out int end)
    {
        for (var position = from; position < text.Length;)
        {
            var offset = text[position..].IndexOfAny(firstChars);
            if (offset < 0) break;
            position += offset;
            foreach (var (content, candidate) in byLengthDescending)
            {
                if (!text[position..].StartsWith(content, StringComparison.Ordinal)) continue;
                token = candidate;
                start = position;
                end = position + content.Length;
                // White_Space characters are all in the BMP, so stepping one code unit at a time is safe.
                if (candidate.LStrip)
                    while (start > from && CharClasses.IsWhitespace(text[start - 1])) start--;
                if (candidate.RStrip)
                    while (end < text.Length && CharClasses.IsWhitespace(text[end])) end++;
                return true;
            }
            position++;
        }
        token = null!;
        start = end = -1;
        return false;
    }
}
