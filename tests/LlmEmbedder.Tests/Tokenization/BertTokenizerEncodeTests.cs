using LlmEmbedder.Tokenization;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>Truncation, padding and batches worked out by hand on the Chinese vocab; corner cases of HF's Unicode handling.</summary>
public sealed class BertTokenizerEncodeTests : IDisposable
{
    // bert-base-chinese vocab.txt ids (line number - 1).
    private const int Cls = 101, Sep = 102, Pad = 0;
    private const int Yi = 671, Er = 753, San = 676, Si = 1724, Wu = 758, Ni = 872, Hao = 1962, Shi = 686, Jie = 4518, He = 1469, Ping = 2398, Ma = 1408;

    private static readonly BertTokenizer Chinese = BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir);
    private readonly string tempDir = TestPaths.NewTempDir("tok-encode");

    public void Dispose() => Directory.Delete(tempDir, recursive: true);

    [Fact]
    public void Truncation_KeepsClsAndSep_CutsTheChosenSide()
    {
        Assert.Equal([Cls, Yi, Er, San, Si, Wu, Sep], Chinese.Encode("一二三四五"));
        Assert.Equal([Cls, Yi, Er, Sep], Chinese.Encode("一二三四五", maxLength: 4));
        Assert.Equal([Cls, Si, Wu, Sep], Chinese.WithTruncationSide(TruncationSide.Left).Encode("一二三四五", maxLength: 4));
        Assert.Equal([Cls, Sep], Chinese.Encode("一二三四五", maxLength: 2));
        Assert.Equal([Cls, Sep], Chinese.Encode(""));
        Assert.Throws<ArgumentOutOfRangeException>(() => Chinese.Encode("一", maxLength: 1));
    }

    [Fact]
    public void EncodeBatch_PadsToLongestRow_WithPadIdAndMaskZero()
    {
        var batch = Chinese.EncodeBatch(["你好", "世界和平吗", ""], maxLength: 6);

        Assert.Equal((3, 6), (batch.BatchSize, batch.SequenceLength));
        Assert.Equal(new long[]
        {
            Cls, Ni, Hao, Sep, Pad, Pad,
            Cls, Shi, Jie, He, Ping, Sep, // 吗 cut by maxLength 6
            Cls, Sep, Pad, Pad, Pad, Pad,
        }, batch.InputIds);
        Assert.Equal(new long[]
        {
            1, 1, 1, 1, 0, 0,
            1, 1, 1, 1, 1, 1,
            1, 1, 0, 0, 0, 0,
        }, batch.AttentionMask);
        Assert.Equal(4, Chinese.EncodeBatch(["你好", "你"]).SequenceLength);
        Assert.Equal((0, 0), (Chinese.EncodeBatch([]).BatchSize, Chinese.EncodeBatch([]).SequenceLength));
        Assert.Equal([Cls, Shi, Jie, He, Ping, Ma, Sep], Chinese.Encode("世界和平吗"));
    }

    [Fact]
    public void Tokenize_GivesWordPieceStrings()
    {
        Assert.Equal(["hello", "世", "界", "[SEP]", "cat", "##s", "[UNK]"], Chinese.Tokenize("Hello 世界[SEP]cats \U00010400"));
    }

    [Fact]
    public void ManyThreads_SameIdsAsOneThread()
    {
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var lines = new MixedTextGenerator(seed: 5, vocabLines).Lines(2_000);
        var sequential = lines.Select(line => Chinese.Encode(line, 128)).ToArray();
        var parallel = new int[lines.Count][];
        Parallel.For(0, lines.Count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Chinese.Encode(lines[i], 128));

        for (var i = 0; i < lines.Count; i++)
            Assert.Equal(sequential[i], parallel[i]);
    }

    /// <summary>
    /// Added tokens beyond the special ones: a normalized one (matched after lowercasing) and one that swallows the
    /// whitespace around it, with ids past the vocab, against HF and worked out by hand.
    /// </summary>
    [Theory]
    [InlineData("a [FOO] b [foo]b", new[] { 4, 8, 5, 8, 5 })]
    [InlineData("x[Foo]y", new[] { 6, 8, 7 })]
    [InlineData("a  <x>  b <x><x>", new[] { 4, 9, 5, 9, 9 })]
    [InlineData("[FO <x", new[] { 1, 1, 1, 6 })]
    [InlineData("[SEP][FOO]<x>[CLS]", new[] { 3, 8, 9, 2 })]
    public void AddedTokensWithOptions_SameIdsAsHuggingFace_AndHandComputed(string text, int[] expected)
    {
        string[] vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "x", "y"];
        var json = HuggingFaceReference.TokenizerJson(vocab);
        json["added_tokens"]!.AsArray().Add(new System.Text.Json.Nodes.JsonObject
        {
            ["id"] = 8, ["content"] = "[FOO]", ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = true, ["special"] = false,
        });
        json["added_tokens"]!.AsArray().Add(new System.Text.Json.Nodes.JsonObject
        {
            ["id"] = 9, ["content"] = "<x>", ["single_word"] = false, ["lstrip"] = true, ["rstrip"] = true, ["normalized"] = false, ["special"] = true,
        });
        var path = HuggingFaceReference.Write(json, tempDir);
        int[] withSpecialTokens = [2, .. expected, 3];

        using var reference = new Tokenizer(path);
        Assert.Equal(withSpecialTokens, HuggingFaceReference.Encode(reference, text));
        var ours = BertTokenizer.FromTokenizerJson(path);
        Assert.Equal(withSpecialTokens, ours.Encode(text));
        Assert.Equal(10, ours.VocabSize);
    }

    /// <summary>
    /// Cases where HF tokenizers' pinned Unicode 9.0 tables or its Rust string handling decide the ids, on a vocab
    /// made so each case has tokens to show the difference; HF and the hand-computed ids must agree with ours.
    /// </summary>
    [Theory]
    // U+0130 lowercases to "i" + U+0307 (full case mapping) when accents are kept.
    [InlineData("İ", false, new[] { 4, 5 })]
    // NFD puts U+1D16D (class 226) after U+1D166 (class 216).
    [InlineData("\U0001D165\U0001D16D\U0001D166", true, new[] { 6 })]
    // 60 supplementary characters: 120 UTF-16 units but 60 characters, under the 100-character word limit.
    [InlineData("😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀", true,
        new[] { 7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8 })]
    // U+0890 is a format character since Unicode 14 but unassigned in 9.0: kept, not cleaned away.
    [InlineData("a\u0890b", true, new[] { 9, 10, 11 })]
    // U+2E50 is punctuation since Unicode 13 but unassigned in 9.0: no split.
    [InlineData("a\u2E50b", true, new[] { 9, 12, 11 })]
    // U+2B820 is CJK to Python transformers but outside HF tokenizers' ranges: it stays in the word.
    [InlineData("a\U0002B820", true, new[] { 9, 13 })]
    // A CJK compatibility ideograph is split off, then NFD maps it to the unified one.
    [InlineData("a\uF900b", true, new[] { 9, 14, 15 })]
    public void UnicodeCornerCases_SameIdsAsHuggingFace_AndHandComputed(string text, bool stripAccents, int[] expected)
    {
        string[] vocab =
        [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "i", "##\u0307", "\U0001D165\U0001D166\U0001D16D", "😀", "##😀",
            "a", "##\u0890", "##b", "##\u2E50", "##\U0002B820", "\u8C48", "b",
        ];
        var json = HuggingFaceReference.TokenizerJson(vocab, lowercase: true, stripAccents: stripAccents);
        var path = HuggingFaceReference.Write(json, tempDir);
        int[] withSpecialTokens = [2, .. expected, 3];

        using var reference = new Tokenizer(path);
        Assert.Equal(withSpecialTokens, HuggingFaceReference.Encode(reference, text));
        Assert.Equal(withSpecialTokens, BertTokenizer.FromTokenizerJson(path).Encode(text));
    }
}
