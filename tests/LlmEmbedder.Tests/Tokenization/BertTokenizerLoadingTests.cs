using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>Bad tokenizer files (Invalid/), each with the one-line error it must give, and vocab reading rules.</summary>
public sealed class BertTokenizerLoadingTests : IDisposable
{
    private readonly string tempDir = TestPaths.NewTempDir("tok-load");

    public void Dispose() => Directory.Delete(tempDir, recursive: true);

    private static string Invalid(string name) => Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Tokenization", "Invalid", name);

    [Theory]
    [InlineData("no-cls.vocab.txt", ": vocab has no [CLS] token")]
    [InlineData("no-sep.vocab.txt", ": vocab has no [SEP] token")]
    [InlineData("no-unk.vocab.txt", ": vocab has no [UNK] token")]
    [InlineData("no-pad.vocab.txt", ": vocab has no [PAD] token")]
    [InlineData("empty.vocab.txt", ": vocab has no [UNK] token")]
    [InlineData("not-utf8.vocab.txt", ":5: not valid UTF-8")]
    public void BadVocabFile_ClearOneLineError(string file, string expectedAfterPath)
    {
        var path = Invalid(file);
        var error = Assert.Throws<EmbedderException>(() => BertTokenizer.FromVocabFile(path));
        Assert.Equal(path + expectedAfterPath, error.Message);
    }

    [Theory]
    [InlineData("no-sep.tokenizer.json", ": vocab has no [SEP] token")]
    [InlineData("bpe-model.tokenizer.json", ": model type 'BPE' is not supported (only BERT WordPiece tokenizers are)")]
    [InlineData("sequence-normalizer.tokenizer.json", ": normalizer 'Sequence' is not supported (only BERT WordPiece tokenizers are)")]
    [InlineData("truncated.tokenizer.json", ": not valid JSON (")]
    public void BadTokenizerJson_ClearOneLineError(string file, string expectedAfterPath)
    {
        var path = Invalid(file);
        var error = Assert.Throws<EmbedderException>(() => BertTokenizer.FromTokenizerJson(path));
        Assert.StartsWith(path + expectedAfterPath, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void ModelFolderWithVocabMissingSep_ErrorNamesTheVocabFile()
    {
        File.Copy(Invalid("no-sep.vocab.txt"), Path.Combine(tempDir, "vocab.txt"));
        var error = Assert.Throws<EmbedderException>(() => BertTokenizer.FromDirectory(tempDir));
        Assert.Equal(Path.Combine(tempDir, "vocab.txt") + ": vocab has no [SEP] token", error.Message);
    }

    [Fact]
    public void MissingOrEmptyFolder_ClearError()
    {
        var missing = Path.Combine(tempDir, "nope");
        Assert.Equal(missing + ": model folder not found", Assert.Throws<EmbedderException>(() => BertTokenizer.FromDirectory(missing)).Message);
        Assert.StartsWith(tempDir + ": neither tokenizer.json nor vocab.txt found", Assert.Throws<EmbedderException>(() => BertTokenizer.FromDirectory(tempDir)).Message);
        var missingVocab = Path.Combine(tempDir, "vocab.txt");
        Assert.Equal(missingVocab + ": vocab file not found", Assert.Throws<EmbedderException>(() => BertTokenizer.FromVocabFile(missingVocab)).Message);
    }

    [Fact]
    public void ChineseVocab_DuplicatedTokenTakesItsLastLine_AsTransformersLoadVocab()
    {
        var tokenizer = BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir);

        // "##s" is on lines 8119 and 20926 of vocab.txt; "cat" on line 10166 (ids are line - 1).
        Assert.Equal(20925, tokenizer.TokenToId("##s"));
        Assert.Equal([101, 10165, 20925, 102], tokenizer.Encode("cats"));
        Assert.Equal(21128, tokenizer.VocabSize);
        Assert.Equal("##s", tokenizer.IdToToken(8118));
        Assert.Equal((0, 100, 101, 102, 103), (tokenizer.PadId, tokenizer.UnkId, tokenizer.ClsId, tokenizer.SepId, tokenizer.MaskId));
        Assert.Equal(512, tokenizer.ModelMaxLength);
    }

    [Fact]
    public void VocabLines_SplitOnlyAtLineBreaks_NotAtUnicodeSeparators()
    {
        var path = Path.Combine(tempDir, "vocab.txt");
        File.WriteAllText(path, "[PAD]\r\n[UNK]\n[CLS]\n[SEP]\na\u2028b\nc\u0085d\ne \n\nf");

        var tokenizer = BertTokenizer.FromVocabFile(path);

        Assert.Equal("a\u2028b", tokenizer.IdToToken(4));
        Assert.Equal("c\u0085d", tokenizer.IdToToken(5));
        Assert.Equal("e ", tokenizer.IdToToken(6)); // trailing space kept, as Python's rstrip("\n") keeps it
        Assert.Equal("", tokenizer.IdToToken(7));
        Assert.Equal(8, tokenizer.TokenToId("f"));
        Assert.Equal(0, tokenizer.TokenToId("[PAD]"));
        Assert.Equal(9, tokenizer.VocabSize);
    }

    /// <summary>
    /// transformers' BertTokenizerFast.__init__ rebuilds the tokenizer.json normalizer when tokenizer_config.json's
    /// do_lower_case / strip_accents / tokenize_chinese_chars differ, so in a model folder the config decides.
    /// </summary>
    [Theory]
    [InlineData(false, true, new[] { 2, 5, 5, 3 })]
    [InlineData(true, false, new[] { 2, 4, 5, 3 })]
    public void ModelFolder_TokenizerConfigCaseSetting_OverridesTokenizerJson(bool jsonLowercase, bool configLowercase, int[] expected)
    {
        var json = HuggingFaceReference.TokenizerJson(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Hello", "hello"], lowercase: jsonLowercase, truncateTo: null);
        HuggingFaceReference.Write(json, tempDir);
        File.WriteAllText(Path.Combine(tempDir, "tokenizer_config.json"), $$"""{"do_lower_case": {{(configLowercase ? "true" : "false")}}}""");

        Assert.Equal(expected, BertTokenizer.FromDirectory(tempDir).Encode("Hello hello"));
        Assert.Equal(jsonLowercase, BertTokenizer.FromTokenizerJson(Path.Combine(tempDir, "tokenizer.json")).Normalization.LowerCase);
    }

    [Fact]
    public void TokenizerConfig_CasedModel_KeepsCaseAndSpecialTokenNames()
    {
        File.WriteAllText(Path.Combine(tempDir, "vocab.txt"), "<pad>\n<unk>\n<s>\n</s>\nHello\nhello\n");
        File.WriteAllText(Path.Combine(tempDir, "tokenizer_config.json"), """
            {"do_lower_case": false, "model_max_length": 1000000000000000019884624838656,
             "unk_token": "<unk>", "pad_token": {"content": "<pad>", "__type": "AddedToken"}, "cls_token": "<s>", "sep_token": "</s>"}
            """);

        var tokenizer = BertTokenizer.FromDirectory(tempDir);

        Assert.Equal([2, 4, 5, 3], tokenizer.Encode("Hello hello"));
        Assert.Equal([2, 1, 3], tokenizer.Encode("HELLO"));
        Assert.Equal((0, 1, 2, 3, (int?)null), (tokenizer.PadId, tokenizer.UnkId, tokenizer.ClsId, tokenizer.SepId, tokenizer.MaskId));
        Assert.Equal(int.MaxValue, tokenizer.ModelMaxLength);
        Assert.False(tokenizer.Normalization.StripsAccents);
    }
}
