using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmEmbedder.Modeling;

/// <summary>The fields of a Hugging Face BertConfig (config.json) that the encoder uses.</summary>
public sealed record BertConfig(
    int VocabSize,
    int HiddenSize,
    int NumHiddenLayers,
    int NumAttentionHeads,
    int IntermediateSize,
    int MaxPositionEmbeddings = 512,
    int TypeVocabSize = 2,
    double LayerNormEps = 1e-12,
    double HiddenDropoutProb = 0.1,
    double AttentionProbsDropoutProb = 0.1,
    string HiddenAct = "gelu",
    int PadTokenId = 0,
    double InitializerRange = 0.02)
{
    private static readonly HashSet<string> SupportedModelTypes = ["bert"];
    private static readonly HashSet<string> SupportedActivations = ["gelu", "gelu_python", "relu", "gelu_new"];

    public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>Reads config.json. Fails with one clear message for a missing file or another architecture.</summary>
    public static BertConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new EmbedderException($"{path}: config.json not found (is this a Hugging Face model folder?)");
        var json = JsonFile.ReadObject(path);

        var modelType = json["model_type"]?.GetValue<string>();
        var architectures = json["architectures"]?.AsArray().Select(a => a?.GetValue<string>()).ToList() ?? [];
        if (modelType is null ? !architectures.Any(a => a is not null && a.StartsWith("Bert", StringComparison.Ordinal))
                              : !SupportedModelTypes.Contains(modelType))
            throw new EmbedderException(
                $"{path}: unsupported architecture (model_type '{modelType ?? "?"}', architectures [{string.Join(", ", architectures)}]); only BERT models are supported");
        if (json["position_embedding_type"]?.GetValue<string>() is { } positions && positions != "absolute")
            throw new EmbedderException($"{path}: unsupported position_embedding_type '{positions}' (only 'absolute')");

        int Int(string key, int? fallback = null) =>
            json[key]?.GetValue<int>() ?? fallback ?? throw new EmbedderException($"{path}: missing '{key}'");
        double Real(string key, double fallback) => json[key]?.GetValue<double>() ?? fallback;

        var config = new BertConfig(
            VocabSize: Int("vocab_size"),
            HiddenSize: Int("hidden_size"),
            NumHiddenLayers: Int("num_hidden_layers"),
            NumAttentionHeads: Int("num_attention_heads"),
            IntermediateSize: Int("intermediate_size"),
            MaxPositionEmbeddings: Int("max_position_embeddings", 512),
            TypeVocabSize: Int("type_vocab_size", 2),
            LayerNormEps: Real("layer_norm_eps", 1e-12),
            HiddenDropoutProb: Real("hidden_dropout_prob", 0.1),
            AttentionProbsDropoutProb: Real("attention_probs_dropout_prob", 0.1),
            HiddenAct: json["hidden_act"]?.GetValue<string>() ?? "gelu",
            PadTokenId: json["pad_token_id"]?.GetValue<int?>() ?? 0,
            InitializerRange: Real("initializer_range", 0.02));
        if (config.HiddenSize % config.NumAttentionHeads != 0)
            throw new EmbedderException($"{path}: hidden_size {config.HiddenSize} is not a multiple of num_attention_heads {config.NumAttentionHeads}");
        if (!SupportedActivations.Contains(config.HiddenAct))
            throw new EmbedderException($"{path}: unsupported hidden_act '{config.HiddenAct}'");
        return config;
    }

    /// <summary>Writes a config.json that Python transformers loads as a BertModel.</summary>
    public void Save(string path)
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("BertModel"), ["model_type"] = "bert",
            ["vocab_size"] = VocabSize, ["hidden_size"] = HiddenSize, ["num_hidden_layers"] = NumHiddenLayers,
            ["num_attention_heads"] = NumAttentionHeads, ["intermediate_size"] = IntermediateSize, ["hidden_act"] = HiddenAct,
            ["hidden_dropout_prob"] = HiddenDropoutProb, ["attention_probs_dropout_prob"] = AttentionProbsDropoutProb,
            ["max_position_embeddings"] = MaxPositionEmbeddings, ["type_vocab_size"] = TypeVocabSize,
            ["initializer_range"] = InitializerRange, ["layer_norm_eps"] = LayerNormEps, ["pad_token_id"] = PadTokenId,
            ["position_embedding_type"] = "absolute", ["torch_dtype"] = "float32",
        };
        FileUtil.WriteAllTextAtomic(path, json.ToJsonString(JsonFormatting.TwoSpaces) + "\n");
    }
}
