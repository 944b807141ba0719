using System.Runtime.CompilerServices;
using System.Text;

namespace LlmEmbedder.Tokenization;

/// <summary>
/// The character classes a BERT tokenizer asks about, answered the way Hugging Face tokenizers (Rust) answers them:
/// Unicode 9.0 categories (<see cref="Unicode9Data"/>), Rust's White_Space set, the CJK ranges of its BertNormalizer.
/// Basic Multilingual Plane lookups are one array read; the supplementary planes (rare in text) binary-search.
/// </summary>
internal static class CharClasses
{
    [Flags]
    public enum CharFlags : byte
    {
        None = 0,
        /// <summary>Cc, Cf, Co: removed by clean_text (tab, newline and carriage return excepted, they are whitespace).</summary>
        Control = 1 << 0,
        Whitespace = 1 << 1,
        /// <summary>ASCII symbols and Unicode P*: each becomes a token of its own.</summary>
        Punctuation = 1 << 2,
        NonspacingMark = 1 << 3,
        Chinese = 1 << 4,
        HasDecomposition = 1 << 5,
        /// <summary>Canonical combining class is not 0, so NFD may move it.</summary>
        NonStarter = 1 << 6,
    }

    private const int HangulBase = 0xAC00, HangulCount = 11172, JamoLBase = 0x1100, JamoVBase = 0x1161, JamoTBase = 0x11A7;
    private const int JamoVCount = 21, JamoTCount = 28;

    private static readonly CharFlags[] BmpFlags = BuildBmpFlags();
    private static readonly byte[] BmpCombiningClass = BuildBmpCombiningClass();
    private static readonly char[] BmpLowercase = BuildBmpLowercase();

    /// <summary>Decomposition of code point c is DecompositionData[start+1 .. start+1+DecompositionData[start]].</summary>
    private static readonly int[] DecompositionData = Unicode9Data.CanonicalDecompositions.ToArray();
    private static readonly Dictionary<int, int> DecompositionStart = BuildDecompositionIndex();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static CharFlags Flags(int codePoint) =>
        codePoint < 0x10000 ? BmpFlags[codePoint] : SupplementaryFlags(codePoint);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CombiningClass(int codePoint) =>
        codePoint < 0x10000 ? BmpCombiningClass[codePoint] : RangeValue(Unicode9Data.CombiningClassRanges, codePoint);

    /// <summary>Rust's char::to_lowercase: the full mapping, which only differs from the simple one for U+0130.</summary>
    public static void AppendLowercase(int codePoint, CharBuffer output)
    {
        if (codePoint < 0x10000)
        {
            if (codePoint == 0x130)
            {
                output.Append('i');
                output.Append('\u0307');
            }
            else
            {
                output.Append(BmpLowercase[codePoint]);
            }
        }
        else
        {
            output.AppendCodePoint(Rune.ToLowerInvariant(new Rune(codePoint)).Value);
        }
    }

    /// <summary>Appends the full canonical decomposition (Unicode 9.0) of the code point, or the code point itself.</summary>
    public static void AppendDecomposition(int codePoint, IntBuffer output)
    {
        if (codePoint - HangulBase is >= 0 and < HangulCount and var syllable)
        {
            output.Append(JamoLBase + syllable / (JamoVCount * JamoTCount));
            output.Append(JamoVBase + syllable % (JamoVCount * JamoTCount) / JamoTCount);
            if (syllable % JamoTCount != 0)
                output.Append(JamoTBase + syllable % JamoTCount);
            return;
        }
        if (DecompositionStart.TryGetValue(codePoint, out var start))
        {
            var length = DecompositionData[start];
            for (var i = 1; i <= length; i++)
                output.Append(DecompositionData[start + i]);
            return;
        }
        output.Append(codePoint);
    }

    public static bool IsChinese(int c) =>
        // The ranges of HF tokenizers' BertNormalizer (note 0x2B820..0x2B91F is not among them, unlike the Python tokenizer).
        c is (>= 0x4E00 and <= 0x9FFF) or (>= 0x3400 and <= 0x4DBF) or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F) or (>= 0x2B740 and <= 0x2B81F) or (>= 0x2B920 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF) or (>= 0x2F800 and <= 0x2FA1F);

    /// <summary>Rust's char::is_whitespace (the Unicode White_Space property).</summary>
    public static bool IsWhitespace(int c) =>
        c is (>= 0x09 and <= 0x0D) or 0x20 or 0x85 or 0xA0 or 0x1680 or (>= 0x2000 and <= 0x200A)
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    private static bool IsAsciiPunctuation(int c) =>
        c is (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126);

    private static CharFlags SupplementaryFlags(int c)
    {
        var flags = CharFlags.None;
        if (InRanges(Unicode9Data.OtherRanges, c)) flags |= CharFlags.Control;
        if (InRanges(Unicode9Data.PunctuationRanges, c)) flags |= CharFlags.Punctuation;
        if (InRanges(Unicode9Data.NonspacingMarkRanges, c)) flags |= CharFlags.NonspacingMark;
        if (IsChinese(c)) flags |= CharFlags.Chinese;
        if (DecompositionStart.ContainsKey(c)) flags |= CharFlags.HasDecomposition;
        if (RangeValue(Unicode9Data.CombiningClassRanges, c) != 0) flags |= CharFlags.NonStarter;
        return flags;
    }

    private static bool InRanges(ReadOnlySpan<int> pairs, int c) => FindRange(pairs, 2, c) >= 0;

    private static int RangeValue(ReadOnlySpan<int> triples, int c) => FindRange(triples, 3, c) is >= 0 and var i ? triples[i + 2] : 0;

    /// <summary>
    /// Binary search in a sorted table of records <paramref name="stride"/> numbers long, each starting with an
    /// inclusive [first, last] range: where the record whose range holds c starts, or -1.
    /// </summary>
    private static int FindRange(ReadOnlySpan<int> table, int stride, int c)
    {
        int low = 0, high = table.Length / stride - 1;
        while (low <= high)
        {
            var mid = (low + high) >>> 1;
            var record = stride * mid;
            if (c < table[record]) high = mid - 1;
            else if (c > table[record + 1]) low = mid + 1;
            else return record;
        }
        return -1;
    }

    /// <summary>Sets the flag on the BMP code points of the ranges of a table like <see cref="FindRange"/>'s.</summary>
    private static void MarkRanges(CharFlags[] flags, ReadOnlySpan<int> table, int stride, CharFlags flag)
    {
        for (var i = 0; i < table.Length; i += stride)
            for (var c = table[i]; c <= table[i + 1] && c < flags.Length; c++)
                flags[c] |= flag;
    }

    private static CharFlags[] BuildBmpFlags()
    {
        var flags = new CharFlags[0x10000];
        MarkRanges(flags, Unicode9Data.OtherRanges, 2, CharFlags.Control);
        MarkRanges(flags, Unicode9Data.PunctuationRanges, 2, CharFlags.Punctuation);
        MarkRanges(flags, Unicode9Data.NonspacingMarkRanges, 2, CharFlags.NonspacingMark);
        MarkRanges(flags, Unicode9Data.CombiningClassRanges, 3, CharFlags.NonStarter);
        for (var c = 0; c < flags.Length; c++)
        {
            if (IsWhitespace(c)) flags[c] |= CharFlags.Whitespace;
            if (IsAsciiPunctuation(c)) flags[c] |= CharFlags.Punctuation;
            if (IsChinese(c)) flags[c] |= CharFlags.Chinese;
            if (c - HangulBase is >= 0 and < HangulCount) flags[c] |= CharFlags.HasDecomposition;
        }
        // Surrogates never reach a lookup as code points; treating a lone one as a control character drops it,
        // as the Python tokenizer does (category Cs).
        for (var c = 0xD800; c <= 0xDFFF; c++) flags[c] |= CharFlags.Control;
        var decompositions = Unicode9Data.CanonicalDecompositions;
        for (var i = 0; i < decompositions.Length; i += decompositions[i + 1] + 2)
            if (decompositions[i] < 0x10000) flags[decompositions[i]] |= CharFlags.HasDecomposition;
        return flags;
    }

    private static byte[] BuildBmpCombiningClass()
    {
        var result = new byte[0x10000];
        var classes = Unicode9Data.CombiningClassRanges;
        for (var i = 0; i < classes.Length; i += 3)
            for (var c = classes[i]; c <= classes[i + 1] && c < 0x10000; c++)
                result[c] = (byte)classes[i + 2];
        return result;
    }

    private static char[] BuildBmpLowercase()
    {
        var result = new char[0x10000];
        for (var c = 0; c < result.Length; c++)
            result[c] = char.IsSurrogate((char)c) ? (char)c : char.ToLowerInvariant((char)c);
        return result;
    }

    private static Dictionary<int, int> BuildDecompositionIndex()
    {
        var index = new Dictionary<int, int>();
        var data = Unicode9Data.CanonicalDecompositions;
        for (var i = 0; i < data.Length; i += data[i + 1] + 2)
            index[data[i]] = i + 1;
        return index;
    }
}
