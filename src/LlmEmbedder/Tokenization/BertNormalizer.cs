using System.Text;
using static LlmEmbedder.Tokenization.CharClasses;

namespace LlmEmbedder.Tokenization;

/// <summary>
/// The text normalization of a BERT tokenizer (Hugging Face "BertNormalizer"; in the Python BertTokenizer the
/// first half of BasicTokenizer). <see cref="StripAccents"/> null means "strip when lowercasing", as in HF.
/// </summary>
public sealed record BertNormalizerOptions(
    bool CleanText = true,
    bool TokenizeChineseChars = true,
    bool? StripAccents = null,
    bool LowerCase = true)
{
    public bool StripsAccents => StripAccents ?? LowerCase;
}

/// <summary>
/// Applies <see cref="BertNormalizerOptions"/> in the order HF tokenizers does: remove control characters and turn
/// whitespace into spaces, put spaces around CJK ideographs, NFD and drop nonspacing marks, lowercase.
/// </summary>
internal sealed class BertNormalizer(BertNormalizerOptions options)
{
    private readonly bool clean = options.CleanText;
    private readonly bool chinese = options.TokenizeChineseChars;
    private readonly bool strip = options.StripsAccents;
    private readonly bool lower = options.LowerCase;

    public BertNormalizerOptions Options { get; } = options;

    /// <summary>Writes the normalized text to <paramref name="output"/> (cleared first).</summary>
    public void Normalize(ReadOnlySpan<char> input, CharBuffer output, IntBuffer scratch)
    {
        output.Clear();
        if (Ascii.IsValid(input))
        {
            NormalizeAscii(input, output);
            return;
        }

        // Pass 1: clean, space out CJK, decompose and reorder combining marks. Marks are dropped only in pass 2,
        // after canonical ordering, because a dropped mark of class 0 still bounds the reordering.
        scratch.Clear();
        for (var i = 0; i < input.Length; i++)
        {
            int codePoint = input[i];
            if (char.IsHighSurrogate(input[i]) && i + 1 < input.Length && char.IsLowSurrogate(input[i + 1]))
                codePoint = char.ConvertToUtf32(input[i], input[++i]);
            var flags = Flags(codePoint);
            if (clean)
            {
                if (codePoint is 0 or 0xFFFD) continue;
                if ((flags & CharFlags.Whitespace) != 0)
                {
                    if ((flags & CharFlags.Control) != 0 && codePoint is not ('\t' or '\n' or '\r')) continue;
                    codePoint = ' ';
                    flags = Flags(' ');
                }
                else if ((flags & CharFlags.Control) != 0)
                {
                    continue;
                }
            }
            if (chinese && (flags & CharFlags.Chinese) != 0)
            {
                scratch.Append(' ');
                AppendDecomposed(codePoint, flags, scratch);
                scratch.Append(' ');
            }
            else
            {
                AppendDecomposed(codePoint, flags, scratch);
            }
        }

        // Pass 2: drop nonspacing marks, lowercase, back to UTF-16.
        var codePoints = scratch.Span;
        foreach (var codePoint in codePoints)
        {
            if (strip && (Flags(codePoint) & CharFlags.NonspacingMark) != 0) continue;
            if (lower) AppendLowercase(codePoint, output);
            else output.AppendCodePoint(codePoint);
        }
    }

    private void AppendDecomposed(int codePoint, CharFlags flags, IntBuffer output)
    {
        if (!strip)
        {
            output.Append(codePoint);
            return;
        }
        if ((flags & (CharFlags.HasDecomposition | CharFlags.NonStarter)) == 0)
        {
            output.Append(codePoint);
            return;
        }
        var first = output.Count;
        AppendDecomposition(codePoint, output);
        for (var i = first; i < output.Count; i++)
            MoveIntoCanonicalOrder(output, i);
    }

    /// <summary>Canonical ordering: a stable insertion sort by combining class within a run of non-starters.</summary>
    private static void MoveIntoCanonicalOrder(IntBuffer codePoints, int index)
    {
        var codePoint = codePoints[index];
        var combiningClass = CombiningClass(codePoint);
        if (combiningClass == 0) return;
        while (index > 0 && CombiningClass(codePoints[index - 1]) > combiningClass)
        {
            codePoints[index] = codePoints[index - 1];
            index--;
        }
        codePoints[index] = codePoint;
    }

    private void NormalizeAscii(ReadOnlySpan<char> input, CharBuffer output)
    {
        foreach (var c in input)
        {
            if (c < ' ' || c == 0x7F)
            {
                if (clean)
                {
                    if (c is '\t' or '\n' or '\r') output.Append(' ');
                    continue;
                }
            }
            output.Append(lower && c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c);
        }
    }
}
