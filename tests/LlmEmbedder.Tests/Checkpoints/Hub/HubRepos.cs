using System.Text;

namespace LlmEmbedder.Tests.Checkpoints.Hub;

/// <summary>Repositories shaped like real ones on the hub, with the real bge-small-zh configs and Chinese vocab.</summary>
internal static class HubRepos
{
    public const string BgeId = "BAAI/bge-small-zh-v1.5";
    public const int BgeWeightsBytes = 300_000;

    public static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static byte[] Text(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>BAAI/bge-small-zh-v1.5 as it is on the hub: every format's weights, sentence-transformers folders, docs.</summary>
    public static Dictionary<string, byte[]> BgeFiles() => new()
    {
        ["config.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-small-zh-v1.5", "config.json")),
        ["config_sentence_transformers.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-small-zh-v1.5", "config_sentence_transformers.json")),
        ["1_Pooling/config.json"] = File.ReadAllBytes(TestPaths.Fixture("bge-small-zh-v1.5", "1_Pooling", "config.json")),
        ["vocab.txt"] = File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "vocab.txt")),
        ["tokenizer_config.json"] = File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "tokenizer_config.json")),
        ["special_tokens_map.json"] = File.ReadAllBytes(Path.Combine(TestPaths.ChineseVocabDir, "special_tokens_map.json")),
        ["tokenizer.json"] = Text("{\"version\": \"1.0\", \"truncation\": null}"),
        ["modules.json"] = Text("""
            [
              {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
              {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
              {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
            ]
            """),
        ["sentence_bert_config.json"] = Text("{\"max_seq_length\": 512, \"do_lower_case\": true}"),
        ["model.safetensors"] = RandomBytes(BgeWeightsBytes, seed: 1),
        ["pytorch_model.bin"] = RandomBytes(2_000, seed: 2),
        ["onnx/model.onnx"] = RandomBytes(1_000, seed: 3),
        ["tf_model.h5"] = RandomBytes(1_000, seed: 4),
        ["README.md"] = Text("# bge-small-zh-v1.5\n"),
        [".gitattributes"] = Text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n"),
    };

    public static readonly string[] BgeLfsFiles = ["model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "tf_model.h5"];

    /// <summary>What an embedding model needs out of BgeFiles.</summary>
    public static readonly string[] BgeWanted =
    [
        "config.json", "config_sentence_transformers.json", "1_Pooling/config.json", "vocab.txt", "tokenizer_config.json",
        "special_tokens_map.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", "model.safetensors",
    ];

    public static FakeHub.Repo AddBge(FakeHub hub, IEnumerable<string>? revisions = null, string? requiredToken = null, string repoId = BgeId) =>
        hub.AddRepo(repoId, BgeFiles(), BgeLfsFiles, revisions, requiredToken);
}
