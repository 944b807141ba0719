using System.Globalization;

namespace LlmEmbedder.Tokenization;

/// <summary>
/// Unicode 9.0.0 character data, the version Hugging Face tokenizers (Rust) classifies characters with in
/// BertNormalizer and BertPreTokenizer (its unicode_categories 0.1.1 and unicode-normalization-alignments 0.1.12
/// dependencies both carry Unicode 9.0 tables). .NET's own tables are newer (characters assigned since 9.0 would
/// be classified differently), so we pin the old version to give the same ids.
/// Categories are the UnicodeData.txt 9.0.0 general categories; canonical decompositions (fully expanded, Hangul
/// syllables excluded because they decompose algorithmically) and combining classes are those of the characters
/// assigned in 9.0.0, which the Unicode stability policy keeps unchanged in later versions.
/// The tables live in Unicode9Data.txt, embedded in the assembly and read once.
/// Range tables are flat arrays of inclusive [first, last] pairs, sorted.
/// </summary>
internal static class Unicode9Data
{
    private const string ResourceName = "LlmEmbedder.Tokenization.Unicode9Data.txt";

    private static readonly int[] Other, NonspacingMarks, Punctuation, CombiningClasses, Decompositions;

    static Unicode9Data()
    {
        var tables = ReadTables();
        int[] Concatenated(string name) => [.. tables[name].SelectMany(record => record)];
        Other = Concatenated("OtherRanges");
        NonspacingMarks = Concatenated("NonspacingMarkRanges");
        Punctuation = Concatenated("PunctuationRanges");
        CombiningClasses = Concatenated("CombiningClassRanges");
        // A record of the file is a code point and its decomposition; the array also holds the decomposition's length.
        Decompositions = [.. tables["CanonicalDecompositions"].SelectMany(record => (int[])[record[0], record.Length - 1, .. record[1..]])];
    }

    /// <summary>General categories Cc, Cf and Co (what HF calls "control" and removes when cleaning text).</summary>
    public static ReadOnlySpan<int> OtherRanges => Other;

    /// <summary>General category Mn (what strip_accents removes after NFD).</summary>
    public static ReadOnlySpan<int> NonspacingMarkRanges => NonspacingMarks;

    /// <summary>General categories Pc, Pd, Ps, Pe, Pi, Pf, Po.</summary>
    public static ReadOnlySpan<int> PunctuationRanges => Punctuation;

    /// <summary>Canonical combining classes other than 0, as [first, last, class] triples.</summary>
    public static ReadOnlySpan<int> CombiningClassRanges => CombiningClasses;

    /// <summary>Full canonical decompositions as [code point, length, decomposed code points...] records.</summary>
    public static ReadOnlySpan<int> CanonicalDecompositions => Decompositions;

    /// <summary>
    /// The tables of the data file by name: a line [Name] starts a table, each other line is one record of
    /// hexadecimal numbers separated by spaces, and a line starting with # is a comment.
    /// </summary>
    private static Dictionary<string, List<int[]>> ReadTables()
    {
        using var stream = typeof(Unicode9Data).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"the resource {ResourceName} is missing from the assembly");
        using var reader = new StreamReader(stream);
        var tables = new Dictionary<string, List<int[]>>();
        List<int[]>? table = null;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            if (line[0] == '[')
            {
                table = [];
                tables.Add(line[1..^1], table);
                continue;
            }
            if (table is null) throw new InvalidDataException($"{ResourceName}: a record before the first [table] line");
            table.Add(Array.ConvertAll(line.Split(' ', StringSplitOptions.RemoveEmptyEntries),
                field => int.Parse(field, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)));
        }
        return tables;
    }
}
