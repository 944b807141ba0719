using System.Text;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>
/// Seeded random lines that exercise every branch of BERT tokenization: Chinese, English in mixed case, digits,
/// full-width punctuation, emoji (with skin tones, ZWJ and variation selectors), tabs and exotic whitespace,
/// accents precomposed and combining, control and zero-width characters, supplementary-plane CJK, Hangul,
/// literal special tokens, words longer than 100 characters, lines past 512 tokens, and arbitrary code points.
/// Only valid UTF-16 (the reference, HF tokenizers, takes Rust strings).
/// </summary>
internal sealed class MixedTextGenerator(int seed, IReadOnlyList<string> vocabTokens)
{
    private readonly Random random = new(seed);
    private readonly string[] words = [.. vocabTokens.Where(t => t.Length > 1 && !t.StartsWith("##", StringComparison.Ordinal) && !t.StartsWith('['))];
    private readonly string[] subwords = [.. vocabTokens.Where(t => t.StartsWith("##", StringComparison.Ordinal) && t.Length > 2).Select(t => t[2..])];

    private static readonly string[] FullWidthPunctuation =
        ["，", "。", "！", "？", "；", "：", "「", "」", "『", "』", "（", "）", "【", "】", "《", "》", "、", "…", "—", "～", "·", "“", "”", "‘", "’", "％", "＃", "＠"];
    private static readonly string[] AsciiSymbols = ["!", "\"", "#", "$", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/", ":", ";", "<", "=", ">", "?", "@", "[", "\\", "]", "^", "_", "`", "{", "|", "}", "~"];
    private static readonly string[] Emoji =
        ["😀", "😂", "👍", "👍🏽", "🔥", "😎", "🤩", "🥺", "🫠", "❤️", "✨", "👨‍👩‍👧", "🇨🇳", "🇺🇸", "🏳️‍🌈", "☕", "⚽", "🀄", "©", "™", "®️"];
    private static readonly string[] Spaces = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00A0", "\u3000", "\u2028", "\u2029", "\u2003", "\u202F", "\u205F", "\u1680", "\v", "\f", "\u0085", ""];
    private static readonly string[] Invisible =
        ["\u0000", "\u0001", "\u001F", "\u007F", "\u0080", "\u009F", "\u00AD", "\u200B", "\u200C", "\u200D", "\u200E", "\u202E", "\u2060", "\u2066", "\uFEFF", "\uFFFD", "\uFE0F", "\u061C", "\u180E", "\uE000", "\uF8FF", "\u0890", "\u08E2", "\U000E0041", "\U000F0000"];
    private static readonly string[] Accented =
        ["café", "naïve", "Ångström", "Crème Brûlée", "cafe\u0301", "e\u0301\u0316", "a\u0316\u0301", "Tiếng Việt", "Ελληνικά", "ΟΔΥΣΣΕΥΣ", "Привет", "Ёлка", "İstanbul", "ß", "ẞ", "Ǆemal", "ǅ", "ﬁ", "Œuvre",
         "ñandú", "Zoë", "Ørsted", "Łódź", "Dvořák", "Ça", "ÉCOLE", "x\u0345", "\U0001D15E", "\U0001D165\U0001D16D\U0001D166", "ὈΔΥΣΣΕΎΣ", "Ǻ", "ǻ", "ḱ", "ẛ\u0323"];
    private static readonly string[] Scripts =
        ["こんにちは", "カタカナ", "ｶﾀｶﾅ", "ひらがな", "مرحبا", "مَرْحَبًا", "שָׁלוֹם", "नमस्ते", "हिन्दी", "ภาษาไทย", "ქართული", "Ᲊ", "Հայերեն", "ᠮᠣᠩᠭᠣᠯ", "ⅣⅫ", "①②", "ＡＢＣａｂｃ１２３", "㍻", "㈱", "½", "²", "Ⓐ"];
    private static readonly string[] Specials = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[cls]", "[Sep]", "[CL", "SEP]", "[[SEP]]", "[MASK][MASK]", "[unused1]", "<S>"];

    public List<string> Lines(int count) => [.. Enumerable.Range(0, count).Select(_ => Line())];

    public string Line()
    {
        var text = new StringBuilder();
        // One line in ten is long enough to need truncation at 512 tokens.
        var fragments = random.Next(10) == 0 ? random.Next(60, 160) : random.Next(1, 14);
        for (var i = 0; i < fragments; i++)
        {
            text.Append(Fragment());
            text.Append(random.Next(4) == 0 ? Pick(Spaces) : random.Next(3) == 0 ? "" : " ");
        }
        return text.ToString();
    }

    private string Fragment() => random.Next(22) switch
    {
        0 or 1 or 2 => Chinese(random.Next(1, 30)),
        3 or 4 => CasedWord(),
        5 => Number(),
        6 => Pick(FullWidthPunctuation),
        7 => Pick(AsciiSymbols),
        8 => Pick(Emoji),
        9 => Pick(Invisible),
        10 => Pick(Accented),
        11 => Pick(Scripts),
        12 => SupplementaryCjk(),
        13 => Hangul(),
        14 => Pick(Specials),
        15 => LongWord(),
        16 => ArbitraryCodePoints(),
        17 => Pick(words) + string.Concat(Enumerable.Range(0, random.Next(1, 4)).Select(_ => Pick(subwords))),
        18 => CasedWord() + Pick(AsciiSymbols) + CasedWord(),
        19 => Chinese(random.Next(50, 300)),
        20 => Pick(Spaces) + Pick(Spaces),
        _ => Pick(words) + Pick(Invisible) + Pick(words),
    };

    private string Chinese(int length)
    {
        var text = new StringBuilder();
        for (var i = 0; i < length; i++)
            text.Append(random.Next(8) == 0 ? Pick(FullWidthPunctuation) : ((char)random.Next(0x4E00, 0x9FA6)).ToString());
        return text.ToString();
    }

    private string CasedWord()
    {
        var word = Pick(words);
        return random.Next(4) switch
        {
            0 => word.ToUpperInvariant(),
            1 => char.ToUpperInvariant(word[0]) + word[1..],
            _ => word,
        };
    }

    private string Number() => random.Next(4) switch
    {
        0 => random.Next().ToString(System.Globalization.CultureInfo.InvariantCulture),
        1 => (random.NextDouble() * 1000).ToString("F2", System.Globalization.CultureInfo.InvariantCulture),
        2 => random.Next(1900, 2100) + "年" + random.Next(1, 13) + "月",
        _ => string.Concat(Enumerable.Range(0, random.Next(1, 40)).Select(_ => (char)('0' + random.Next(10)))),
    };

    /// <summary>CJK Extension B..G, including U+2B820..U+2B91F which HF tokenizers (unlike Python transformers) does not treat as CJK.</summary>
    private string SupplementaryCjk()
    {
        int[][] ranges = [[0x20000, 0x2A6DF], [0x2A700, 0x2B73F], [0x2B740, 0x2B81F], [0x2B820, 0x2B91F], [0x2B920, 0x2CEAF], [0x2CEB0, 0x2EBEF], [0x30000, 0x3134F], [0x2F800, 0x2FA1F], [0xF900, 0xFAFF]];
        var text = new StringBuilder();
        for (var n = random.Next(1, 6); n > 0; n--)
        {
            var range = ranges[random.Next(ranges.Length)];
            text.Append(char.ConvertFromUtf32(random.Next(range[0], range[1] + 1)));
        }
        return text.ToString();
    }

    private string Hangul()
    {
        var text = new StringBuilder();
        for (var n = random.Next(1, 8); n > 0; n--)
            text.Append(random.Next(6) == 0 ? (char)random.Next(0x1100, 0x1200) : (char)random.Next(0xAC00, 0xD7A4));
        return text.ToString();
    }

    private string LongWord()
    {
        var length = random.Next(4) switch { 0 => 100, 1 => 101, _ => random.Next(90, 260) };
        return random.Next(5) switch
        {
            0 => string.Concat(Enumerable.Range(0, length).Select(_ => (char)('a' + random.Next(26)))),
            1 => string.Concat(Enumerable.Range(0, length).Select(_ => (char)('0' + random.Next(10)))),
            // 60-99 math letters: more than 100 UTF-16 code units but not more than 100 characters.
            2 => string.Concat(Enumerable.Range(0, random.Next(60, 100)).Select(_ => char.ConvertFromUtf32(0x1D41A + random.Next(26)))),
            3 => Prefix(string.Concat(Enumerable.Range(0, length / 3).Select(_ => Pick(words))), length),
            // Accents that NFD and mark stripping shrink under the limit.
            _ => string.Concat(Enumerable.Range(0, length / 2).Select(_ => "e\u0301")),
        };
    }

    /// <summary>Any Unicode scalar value, weighted towards the planes where text lives.</summary>
    private string ArbitraryCodePoints()
    {
        var text = new StringBuilder();
        for (var n = random.Next(1, 6); n > 0; n--)
        {
            int codePoint;
            do
            {
                codePoint = random.Next(4) switch
                {
                    0 => random.Next(0x80, 0x800),
                    1 => random.Next(0x800, 0x10000),
                    2 => random.Next(0x10000, 0x30000),
                    _ => random.Next(0, 0x110000),
                };
            }
            while (codePoint is >= 0xD800 and <= 0xDFFF);
            text.Append(char.ConvertFromUtf32(codePoint));
        }
        return text.ToString();
    }

    private static string Prefix(string text, int length)
    {
        var end = Math.Min(length, text.Length);
        return text[..(end > 0 && char.IsHighSurrogate(text[end - 1]) ? end - 1 : end)];
    }

    private T Pick<T>(IReadOnlyList<T> items) => items[random.Next(items.Count)];
}
