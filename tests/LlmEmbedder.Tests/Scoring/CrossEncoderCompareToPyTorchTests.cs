using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Tests.Scoring;

/// <summary>
/// Our cross-encoder against a plain-PyTorch BertForSequenceClassification (tests/reference/cross_encoder_reference.py)
/// on the same random weights, with each text tokenized by Hugging Face tokenizers: the pair rows (ids and token types,
/// truncation included) are identical and the logits agree within 1e-5.
/// </summary>
public sealed class CrossEncoderCompareToPyTorchTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("cross-encoder");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Theory]
    [InlineData(20)]   // both texts of the long pairs are cut
    [InlineData(21)]   // an odd budget: the longer text keeps the extra token
    [InlineData(40)]   // mostly only the longer text is cut
    [InlineData(64)]   // the model's positions: only the longest pairs are cut
    public void PairRowsAndLogitsEqualThePyTorchReference(int maxLength)
    {
        var modelDir = CrossEncoderReference.Create(dir);
        var pairs = CrossEncoderReference.Pairs();
        var reference = CrossEncoderReference.Score(modelDir, pairs, maxLength);

        using var model = CrossEncoder.Load(modelDir, maxLength);
        var batch = model.Tokenizer.EncodePairBatch(pairs, maxLength);
        int cut = 0;
        for (int row = 0; row < pairs.Count; row++)
        {
            int length = (int)batch.AttentionMask.Skip(row * batch.SequenceLength).Take(batch.SequenceLength).Sum();
            var ids = batch.InputIds.Skip(row * batch.SequenceLength).Take(length).Select(i => (int)i).ToArray();
            var types = batch.TokenTypeIds!.Skip(row * batch.SequenceLength).Take(length).Select(i => (int)i).ToArray();
            Assert.Equal(reference.InputIds[row], ids);
            Assert.Equal(reference.TokenTypeIds[row], types);
            Assert.All(batch.TokenTypeIds!.Skip(row * batch.SequenceLength + length).Take(batch.SequenceLength - length), t => Assert.Equal(0, t));
            cut += length == maxLength ? 1 : 0;
        }
        if (maxLength < 64) Assert.True(cut >= 4, $"only {cut} pairs reach max_length {maxLength}: truncation is barely exercised");

        var scores = model.Score(pairs, batchSize: 5);
        for (int i = 0; i < pairs.Count; i++)
            Assert.True(Math.Abs(scores[i] - reference.Logits[i]) <= 1e-5, $"pair {i}: ours {scores[i]}, PyTorch {reference.Logits[i]}");
        // The logits spread out: a wrong token type, pooler or classifier could not hide inside the tolerance.
        Assert.True(reference.Logits.Max() - reference.Logits.Min() > 0.1, $"logits {string.Join(", ", reference.Logits)}");

        var sigmoid = model.Score(pairs, batchSize: 3, sigmoid: true);
        for (int i = 0; i < pairs.Count; i++)
            Assert.True(Math.Abs(sigmoid[i] - 1 / (1 + Math.Exp(-reference.Logits[i]))) <= 1e-6, $"pair {i}: sigmoid");
    }

    [Theory]
    [InlineData("sentence_transformers", """{"activation_fn": "torch.nn.modules.activation.Sigmoid", "version": "4.1.0"}""", "torch.nn.modules.activation.Sigmoid")]
    [InlineData("sbert_ce_default_activation_function", "\"torch.nn.modules.linear.Identity\"", "torch.nn.modules.linear.Identity")]
    public void SentenceTransformersCrossEncoderFoldersLoadWithTheirDeclaredActivation(string key, string value, string activation)
    {
        var modelDir = CrossEncoderReference.Create(dir);
        var configPath = Path.Combine(modelDir, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config[key] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(configPath, config.ToJsonString());
        using var model = CrossEncoder.Load(modelDir);
        Assert.Equal(activation, model.DeclaredActivation);
        Assert.Equal(64, model.MaxLength);   // the tokenizer's 512, capped by the model's positions
        var reference = CrossEncoderReference.Score(modelDir, CrossEncoderReference.Pairs(), 64);
        var scores = model.Score(CrossEncoderReference.Pairs());
        Assert.True(scores.Zip(reference.Logits, (a, b) => Math.Abs(a - b)).Max() <= 1e-5);   // raw logits whatever the folder says
    }

    [Fact]
    public void FoldersThatAreNotOneLabelRerankersAreClearErrors()
    {
        var modelDir = CrossEncoderReference.Create(dir);
        var configPath = Path.Combine(modelDir, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["id2label"] = System.Text.Json.Nodes.JsonNode.Parse("""{"0": "contradiction", "1": "entailment", "2": "neutral"}""");
        File.WriteAllText(configPath, config.ToJsonString());
        Assert.Contains("the model has 3 labels; scoring needs a reranker with one relevance logit",
            Assert.Throws<EmbedderException>(() => CrossEncoder.Load(modelDir)).Message);

        config["id2label"] = System.Text.Json.Nodes.JsonNode.Parse("""{"0": "LABEL_0"}""");
        config["architectures"] = new System.Text.Json.Nodes.JsonArray("BertModel");
        File.WriteAllText(configPath, config.ToJsonString());
        Assert.False(CrossEncoder.IsCrossEncoderFolder(modelDir));
        Assert.Contains("is not BertForSequenceClassification", Assert.Throws<EmbedderException>(() => CrossEncoder.Load(modelDir)).Message);

        // An embedding model's weights have no classifier: named, not silently random.
        var embedder = LlmEmbedder.Tests.Cli.CliProcess.TinyChineseModel(dir);
        var embedderConfigPath = Path.Combine(embedder, "config.json");
        var embedderConfig = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(embedderConfigPath))!.AsObject();
        embedderConfig["architectures"] = new System.Text.Json.Nodes.JsonArray("BertForSequenceClassification");
        embedderConfig["num_labels"] = 1;
        File.WriteAllText(embedderConfigPath, embedderConfig.ToJsonString());
        Assert.Contains("not in the checkpoint", Assert.Throws<EmbedderException>(() => CrossEncoder.Load(embedder)).Message);
    }

    [Fact]
    public void TokenTypesChangeTheScore()
    {
        // Guards the comparison above: the same rows with every token type 0 score differently.
        var modelDir = CrossEncoderReference.Create(dir);
        using var model = CrossEncoder.Load(modelDir, 64);
        var batch = model.Tokenizer.EncodePairBatch(CrossEncoderReference.Pairs(), 64);
        using var scope = TorchSharp.torch.NewDisposeScope();
        using var _ = TorchSharp.torch.inference_mode();
        var withTypes = model.Forward(batch).data<float>().ToArray();
        var withoutTypes = model.Forward(batch with { TokenTypeIds = null }).data<float>().ToArray();
        Assert.True(withTypes.Zip(withoutTypes, (a, b) => Math.Abs(a - b)).Max() > 1e-3);
    }
}

/// <summary>
/// The pair lengths of longest_first truncation against the cases of Hugging Face tokenizers' own unit test
/// (truncate_encodings_longest_first: texts of 0, 2, 4 and 8 tokens, max_length 7), and as properties on random lengths.
/// </summary>
public sealed class PairTruncationTests
{
    [Theory]
    [InlineData(0, 0, 0, 0)] [InlineData(0, 2, 0, 2)] [InlineData(0, 4, 0, 4)] [InlineData(0, 8, 0, 7)]
    [InlineData(2, 0, 2, 0)] [InlineData(2, 2, 2, 2)] [InlineData(2, 4, 2, 4)] [InlineData(2, 8, 2, 5)]
    [InlineData(4, 0, 4, 0)] [InlineData(4, 2, 4, 2)] [InlineData(4, 4, 3, 4)] [InlineData(4, 8, 3, 4)]
    [InlineData(8, 0, 7, 0)] [InlineData(8, 2, 5, 2)] [InlineData(8, 4, 4, 3)] [InlineData(8, 8, 3, 4)]
    public void LengthsAsInHuggingFaceTokenizersOwnTest(int first, int second, int keepFirst, int keepSecond) =>
        Assert.Equal((keepFirst, keepSecond), BertTokenizer.PairLengths(first, second, budget: 7));

    [Fact]
    public void NeverOverTheBudgetNeverLongerThanTheTextAndNothingCutWhenBothFit()
    {
        var random = new Random(11);
        for (int trial = 0; trial < 5000; trial++)
        {
            int first = random.Next(0, 600), second = random.Next(0, 600), budget = random.Next(0, 520);
            var (a, b) = BertTokenizer.PairLengths(first, second, budget);
            Assert.True(a <= first && b <= second && a >= 0 && b >= 0);
            if (first + second <= budget) Assert.Equal((first, second), (a, b));
            else Assert.Equal(budget, a + b);
            // The shorter text (the first on a tie) is cut only when it would take more than half the budget.
            if (2 * Math.Min(first, second) <= budget) Assert.Equal(Math.Min(first, second), first <= second ? a : b);
        }
    }
}
