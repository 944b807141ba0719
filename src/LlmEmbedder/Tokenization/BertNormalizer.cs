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
    [ThreadStatic] private static IntBuffer? decompositionScratch;

    private readonly bool clean = options.CleanText;
    private readonly bool chinese = options.TokenizeChineseChars;
    private readonly bool strip = options.StripsAccents;
    private readonly bool lower = options.LowerCase;

    public BertNormalizerOptions Options { get; } = options;

    /// <summary>Writes the normalized text to <paramref name="output"/> (cleared first).</summary>
    /// <param name="pendingMarks">Scratch space for a run of combining marks awaiting canonical ordering.</param>
    public void Normalize(ReadOnlySpan<char> input, CharBuffer output, IntBuffer pendingMarks)
    {
        output.Clear();
        if (Ascii.IsValid(input))
        {
            NormalizeAscii(input, output);
            return;
        }

        pendingMarks.Clear();
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
                AppendStarter(' ', output, pendingMarks);
                AppendDecomposed(codePoint, flags, output, pendingMarks);
                AppendStarter(' ', output, pendingMarks);
            }
            else
            {
                AppendDecomposed(codePoint, flags, output, pendingMarks);
            }
        }
        FlushMarks(output, pendingMarks);
    }

    private void AppendDecomposed(int codePoint, CharFlags flags, CharBuffer output, IntBuffer pendingMarks)
    {
        if (!strip)
        {
            AppendFinal(codePoint, output);
            return;
        }
        if ((flags & (CharFlags.HasDecomposition | CharFlags.NonStarter)) == 0)
        {
            // The common case: a starter that NFD leaves alone.
            if (pendingMarks.Count > 0) FlushMarks(output, pendingMarks);
            if ((flags & CharFlags.NonspacingMark) == 0) AppendFinal(codePoint, output);
            return;
        }
        var decomposition = decompositionScratch ??= new IntBuffer();
        decomposition.Clear();
        AppendDecomposition(codePoint, decomposition);
        foreach (var part in decomposition.Span)
        {
            if (CombiningClass(part) == 0) AppendStarter(part, output, pendingMarks);
            else pendingMarks.Append(part);
        }
    }

    private void AppendStarter(int codePoint, CharBuffer output, IntBuffer pendingMarks)
    {
        if (pendingMarks.Count > 0) FlushMarks(output, pendingMarks);
        if (!strip || (Flags(codePoint) & CharFlags.NonspacingMark) == 0) AppendFinal(codePoint, output);
    }

    /// <summary>
    /// NFD's canonical ordering moves combining marks only within a run between two starters (class 0), so a run is
    /// held back, stably sorted by combining class, and only then stripped of nonspacing marks: a dropped mark of
    /// class 0 still ends a run.
    /// </summary>
    private void FlushMarks(CharBuffer output, IntBuffer pendingMarks)
    {
        var marks = pendingMarks.Span;
        for (var i = 1; i < marks.Length; i++)
        {
            var mark = marks[i];
            var markClass = CombiningClass(mark);
            var j = i;
            for (; j > 0 && CombiningClass(marks[j - 1]) > markClass; j--)
                marks[j] = marks[j - 1];
            marks[j] = mark;
        }
        foreach (var mark in marks)
            if ((Flags(mark) & CharFlags.NonspacingMark) == 0) AppendFinal(mark, output);
        pendingMarks.Clear();
    }

    private void AppendFinal(int codePoint, CharBuffer output)
    {
        if (lower) AppendLowercase(codePoint, output);
        else output.AppendCodePoint(codePoint);
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
