using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Tokenization;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Scoring;

/// <summary>
/// The reference cross-encoder: a random-weight BertForSequenceClassification written and run by
/// tests/reference/cross_encoder_reference.py in plain PyTorch, with the real Chinese vocabulary in a tokenizer.json
/// that Hugging Face tokenizers (Rust, through Tokenizers.DotNet) reads. Each text is tokenized by Hugging Face,
/// untruncated; the script lays out and truncates the pair as Hugging Face does.
/// </summary>
internal static class CrossEncoderReference
{
    private const int Vocab = 21128;

    public sealed record Scored(double[] Logits, int[][] InputIds, int[][] TokenTypeIds);

    /// <summary>A cross-encoder folder: the script's config.json and pytorch_model.bin, and a tokenizer.json of the Chinese vocab.</summary>
    public static string Create(string parent, int seed = 3)
    {
        var dir = Path.Combine(parent, "cross-encoder");
        ReferencePython.Run("cross_encoder_reference.py", "write", dir, $"{Vocab}", $"{seed}");
        var lines = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        HuggingFaceReference.Write(HuggingFaceReference.TokenizerJson(lines, truncateTo: null), dir);
        return dir;
    }

    /// <summary>The reference's logits, and the rows it fed the model, for (first, second) pairs at <paramref name="maxLength"/>.</summary>
    public static Scored Score(string modelDir, IReadOnlyList<(string First, string Second)> pairs, int maxLength)
    {
        using var tokenizer = new Tokenizer(Path.Combine(modelDir, "tokenizer.json"));
        int[] Ids(string text) => HuggingFaceReference.Encode(tokenizer, text)[1..^1];   // without [CLS] and [SEP]
        var vocab = HuggingFaceReference.ReadVocabLines(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt"));
        var request = new JsonObject
        {
            ["max_length"] = maxLength,
            ["cls"] = Array.IndexOf(vocab, "[CLS]"),
            ["sep"] = Array.IndexOf(vocab, "[SEP]"),
            ["pad"] = Array.IndexOf(vocab, "[PAD]"),
            ["pairs"] = new JsonArray(pairs.Select(p => (JsonNode)new JsonArray(ToJson(Ids(p.First)), ToJson(Ids(p.Second)))).ToArray()),
        };
        var path = Path.Combine(modelDir, $"pairs-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, request.ToJsonString());
        var output = JsonNode.Parse(ReferencePython.Run("cross_encoder_reference.py", "score", modelDir, path))!;
        File.Delete(path);
        int[][] Rows(string name) => output[name]!.AsArray().Select(r => r!.AsArray().Select(v => v!.GetValue<int>()).ToArray()).ToArray();
        return new Scored(output["logits"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray(), Rows("input_ids"), Rows("token_type_ids"));
    }

    /// <summary>Query/passage pairs from Chinese and English texts of very different lengths, so that longest_first cuts one side, both, or none.</summary>
    public static IReadOnlyList<(string First, string Second)> Pairs()
    {
        string[] queries = ["熊猫吃什么", "Who wrote the Analects?", "长江和黄河哪一条更长，它们分别流经哪些省份，对中国的农业和交通有什么影响？", "茶"];
        string[] passages =
        [
            "熊猫喜欢吃竹子，也喜欢在树上睡觉，它们生活在四川和陕西的山林里，每天要花十几个小时吃东西。",
            "The Analects were compiled by the disciples of Confucius.",
            "长城",
            "上海是中国最大的城市，也是重要的金融中心 and a major port on the Yangtze River delta.",
        ];
        return queries.SelectMany(q => passages.Select(p => (q, p))).ToList();
    }

    private static JsonArray ToJson(int[] ids) => new(ids.Select(id => (JsonNode)id).ToArray());

    public static string Serialize(object value) => JsonSerializer.Serialize(value, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
}
