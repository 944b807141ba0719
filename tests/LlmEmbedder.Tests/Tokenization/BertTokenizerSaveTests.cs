using System.Text.Json.Nodes;
using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Tests.Tokenization;

/// <summary>Save → load round trips, and tokenizer.json against vocab.txt loading.</summary>
public sealed class BertTokenizerSaveTests : IDisposable
{
    private readonly string tempDir = TestPaths.NewTempDir("tok-save");

    public void Dispose() => Directory.Delete(tempDir, recursive: true);

    private static List<string> Lines(int count)
    {
        var vocabLines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        return new MixedTextGenerator(seed: 11, vocabLines).Lines(count);
    }

    [Fact]
    public void SaveThenFromDirectory_SameIdsAsOriginal_AndVocabTxtUnchanged()
    {
        var original = BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir);
        var saved = Path.Combine(tempDir, "saved");
        original.Save(saved);
        var reloaded = BertTokenizer.FromDirectory(saved);

        Assert.Equal(
            File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt")),
            File.ReadAllBytes(Path.Combine(saved, "vocab.txt")));
        foreach (var line in Lines(3_000))
            Assert.Equal(original.Encode(line), reloaded.Encode(line));
        Assert.Equal(
            (original.PadId, original.ClsId, original.SepId, original.UnkId, original.MaskId, original.VocabSize, original.ModelMaxLength),
            (reloaded.PadId, reloaded.ClsId, reloaded.SepId, reloaded.UnkId, reloaded.MaskId, reloaded.VocabSize, reloaded.ModelMaxLength));
        Assert.Equal(["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"],
            Directory.GetFiles(saved).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void TokenizerJsonAlone_SameIdsAsVocabTxtAlone()
    {
        var saved = Path.Combine(tempDir, "saved");
        BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(saved);
        var fromJson = BertTokenizer.FromTokenizerJson(Path.Combine(saved, "tokenizer.json"));
        var fromVocab = BertTokenizer.FromVocabFile(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));

        foreach (var line in Lines(3_000))
            Assert.Equal(fromVocab.Encode(line), fromJson.Encode(line));
        // The 53 ids that only an earlier duplicate line had are gaps in tokenizer.json; the size still covers them.
        Assert.Equal(21128, fromJson.VocabSize);
        Assert.Null(fromJson.IdToToken(8118));
    }

    [Fact]
    public void TokenizerJsonWithGaps_SavedAgainBesideVocabTxt_KeepsTheOriginalVocabTxt()
    {
        var first = Path.Combine(tempDir, "first");
        BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(first);
        var second = Path.Combine(tempDir, "second");
        BertTokenizer.FromDirectory(first).Save(second);

        Assert.Equal(File.ReadAllBytes(Path.Combine(first, "vocab.txt")), File.ReadAllBytes(Path.Combine(second, "vocab.txt")));
        Assert.Equal(File.ReadAllText(Path.Combine(first, "tokenizer.json")), File.ReadAllText(Path.Combine(second, "tokenizer.json")));
    }

    /// <summary>The saved config carries what transformers' BertTokenizer reads back (compared with the bert-base-chinese fixture).</summary>
    [Fact]
    public void SavedTokenizerConfig_HasTheFixtureSettings()
    {
        var saved = Path.Combine(tempDir, "saved");
        BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(saved);
        var fixture = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.ChineseVocabDir, "tokenizer_config.json")))!.AsObject();
        var ours = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "tokenizer_config.json")))!.AsObject();

        foreach (var (key, value) in fixture)
            Assert.True(JsonNode.DeepEquals(value, ours[key]), $"{key}: fixture {value?.ToJsonString()}, saved {ours[key]?.ToJsonString()}");
        Assert.True(JsonNode.DeepEquals(
            JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.ChineseVocabDir, "special_tokens_map.json"))),
            JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "special_tokens_map.json")))));
    }

    [Fact]
    public void CasedVocab_SaveThenLoad_StaysCased()
    {
        File.WriteAllText(Path.Combine(tempDir, "vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\nHello\nhello\ncafé\n");
        var cased = BertTokenizer.FromVocabFile(Path.Combine(tempDir, "vocab.txt"), lowerCase: false);
        var saved = Path.Combine(tempDir, "saved");
        cased.Save(saved);

        foreach (var reloaded in new[] { BertTokenizer.FromDirectory(saved), BertTokenizer.FromTokenizerJson(Path.Combine(saved, "tokenizer.json")) })
        {
            Assert.Equal([2, 4, 5, 6, 3], reloaded.Encode("Hello hello café"));
            Assert.False(reloaded.Normalization.LowerCase);
        }
    }
}
