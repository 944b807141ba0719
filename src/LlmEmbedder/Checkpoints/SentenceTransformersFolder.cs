using System.Text.Json.Nodes;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// What a sentence-transformers folder says about its pipeline (modules.json: Transformer → Pooling →
/// [Dense] → [Normalize]), so that a model exported by either tool encodes the same way here.
/// </summary>
/// <param name="Dense">The Dense module after pooling, when there is one.</param>
public sealed record SentenceTransformersFolder(PoolingMethod Pooling, bool Normalize, int? MaxSeqLength, DenseModuleConfig? Dense = null)
{
    private const string ModuleNamespace = "sentence_transformers.models.";

    /// <summary>Null when the folder has no modules.json (a plain Hugging Face model folder).</summary>
    public static SentenceTransformersFolder? TryRead(string modelDir)
    {
        var modulesPath = Path.Combine(modelDir, "modules.json");
        if (!File.Exists(modulesPath)) return null;
        var modules = ParseJson(modulesPath).AsArray();
        PoolingMethod? pooling = null;
        DenseModuleConfig? dense = null;
        bool normalize = false;
        foreach (var module in modules)
        {
            var type = module?["type"]?.GetValue<string>() ?? "";
            var path = module?["path"]?.GetValue<string>() ?? "";
            switch (type.StartsWith(ModuleNamespace, StringComparison.Ordinal) ? type[ModuleNamespace.Length..] : type)
            {
                case "Transformer":
                    if (path.Length > 0)
                        throw new EmbedderException($"{modulesPath}: the Transformer module lives in '{path}'; only a Transformer at the folder root is supported");
                    break;
                case "Pooling":
                    pooling = ReadPooling(Path.Combine(modelDir, path, "config.json"));
                    break;
                case "Dense":
                    // Our pipeline applies Dense between Pooling and Normalize, so only that order is accepted.
                    if (pooling is null || normalize || dense is not null)
                        throw new EmbedderException($"{modulesPath}: a Dense module is supported once, after Pooling and before Normalize");
                    dense = DenseModuleConfig.Read(Path.Combine(modelDir, path));
                    break;
                case "Normalize":
                    normalize = true;
                    break;
                default:
                    throw new EmbedderException($"{modulesPath}: unsupported sentence-transformers module '{type}'");
            }
        }
        if (pooling is null) throw new EmbedderException($"{modulesPath}: no Pooling module");

        int? maxSeqLength = null;
        var bertConfigPath = Path.Combine(modelDir, "sentence_bert_config.json");
        if (File.Exists(bertConfigPath))
            maxSeqLength = ParseJson(bertConfigPath)["max_seq_length"]?.GetValue<int>();
        return new SentenceTransformersFolder(pooling.Value, normalize, maxSeqLength, dense);
    }

    private static PoolingMethod ReadPooling(string configPath)
    {
        var config = ParseJson(configPath);
        bool Flag(string key) => config[key]?.GetValue<bool>() ?? false;
        var modes = new[] { "cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken" }
            .Where(mode => Flag("pooling_mode_" + mode)).ToList();
        return modes switch
        {
            ["cls_token"] => PoolingMethod.Cls,
            ["mean_tokens"] => PoolingMethod.Mean,
            _ => throw new EmbedderException($"{configPath}: unsupported pooling [{string.Join(", ", modes)}] (cls_token or mean_tokens)"),
        };
    }

    internal static JsonNode ParseJson(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: file not found");
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) ?? throw new EmbedderException($"{path}: empty JSON");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new EmbedderException($"{path}: not valid JSON ({e.Message})");
        }
    }
}

/// <summary>
/// A sentence-transformers Dense module folder: config.json {in_features, out_features, bias, activation_function}
/// and its weights ("linear.weight" [out, in], "linear.bias" when bias is true) in model.safetensors or pytorch_model.bin.
/// </summary>
public sealed record DenseModuleConfig(string Directory, int InFeatures, int OutFeatures, bool Bias, DenseActivation Activation)
{
    public const string IdentityActivation = "torch.nn.modules.linear.Identity";
    public const string TanhActivation = "torch.nn.modules.activation.Tanh";

    public static DenseModuleConfig Read(string directory)
    {
        var configPath = Path.Combine(directory, "config.json");
        var config = SentenceTransformersFolder.ParseJson(configPath);
        try
        {
            return FromJson(directory, configPath, config);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new EmbedderException($"{configPath}: not a Dense module config ({e.Message})");
        }
    }

    private static DenseModuleConfig FromJson(string directory, string configPath, JsonNode config)
    {
        int Features(string key) => config[key]?.GetValue<int>() is int n && n > 0
            ? n : throw new EmbedderException($"{configPath}: \"{key}\" must be a positive integer");
        var activation = config["activation_function"]?.GetValue<string>() ?? IdentityActivation;
        return new DenseModuleConfig(directory, Features("in_features"), Features("out_features"), config["bias"]?.GetValue<bool>() ?? true,
            activation switch
            {
                IdentityActivation => DenseActivation.Identity,
                TanhActivation => DenseActivation.Tanh,
                _ => throw new EmbedderException($"{configPath}: unsupported activation_function '{activation}' ({IdentityActivation} or {TanhActivation})"),
            });
    }
}

public enum DenseActivation
{
    Identity,
    Tanh,
}
