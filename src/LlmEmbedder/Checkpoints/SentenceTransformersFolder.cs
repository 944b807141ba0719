using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Checkpoints;

/// <summary>
/// What a sentence-transformers folder says about its pipeline (modules.json: Transformer → Pooling →
/// [Dense] → [Normalize]), so that a model exported by either tool encodes the same way here.
/// </summary>
/// <param name="Dense">The Dense module after pooling, when there is one.</param>
/// <param name="Prompts">config_sentence_transformers.json's prompts (name → prefix); empty when there are none.</param>
/// <param name="SimilarityFunction">similarity_fn_name ("cosine", "dot", "euclidean"), when the folder says.</param>
public sealed record SentenceTransformersFolder(PoolingMethod Pooling, bool Normalize, int? MaxSeqLength, DenseModuleConfig? Dense = null,
    IReadOnlyDictionary<string, string>? Prompts = null, string? SimilarityFunction = null)
{
    public const string ModuleNamespace = "sentence_transformers.models.";
    public const string PoolingFolder = "1_Pooling";
    public const string DenseFolder = "2_Dense";
    public const string ConfigFile = "config_sentence_transformers.json";
    public const string QueryPromptSuffix = "_query";
    public const string KeyPromptSuffix = "_key";

    /// <summary>The lowest sentence-transformers release that reads every field written here (prompts, similarity_fn_name).</summary>
    public const string MinimumSentenceTransformersVersion = "3.0.0";

    /// <summary>Null when the folder has no modules.json (a plain Hugging Face model folder).</summary>
    public static SentenceTransformersFolder? TryRead(string modelDir)
    {
        var modulesPath = Path.Combine(modelDir, "modules.json");
        if (!File.Exists(modulesPath)) return null;
        var modules = JsonFile.ReadNode(modulesPath).AsArray();
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
            maxSeqLength = JsonFile.ReadNode(bertConfigPath)["max_seq_length"]?.GetValue<int>();
        var prompts = new Dictionary<string, string>(StringComparer.Ordinal);
        string? similarity = null;
        var configPath = Path.Combine(modelDir, ConfigFile);
        if (File.Exists(configPath))
        {
            var config = JsonFile.ReadObject(configPath);
            if (config["prompts"] is JsonObject promptTable)
                foreach (var (name, value) in promptTable)
                    if (value is JsonValue text && text.TryGetValue<string>(out var prefix)) prompts[name] = prefix;
            similarity = config["similarity_fn_name"] is JsonValue function && function.TryGetValue<string>(out var fn) ? fn : null;
        }
        return new SentenceTransformersFolder(pooling.Value, normalize, maxSeqLength, dense, prompts, similarity);
    }

    /// <summary>
    /// The encoder spec this folder describes. Instructions come from prompts named <c>{task}_query</c> / <c>{task}_key</c>
    /// (as we write them); a folder with only other prompts (e.g. "query") gets none, as sentence-transformers applies
    /// a prompt only when asked to.
    /// </summary>
    public EncoderSpec ToSpec(BertConfig config)
    {
        var tasks = new SortedDictionary<string, Instruction>(StringComparer.Ordinal);
        foreach (var (name, prefix) in Prompts ?? new Dictionary<string, string>())
        {
            if (!name.EndsWith(QueryPromptSuffix, StringComparison.Ordinal)) continue;
            var task = name[..^QueryPromptSuffix.Length];
            var key = Prompts!.TryGetValue(task + KeyPromptSuffix, out var keyPrefix) ? keyPrefix : "";
            tasks[task] = new Instruction(prefix, key);
        }
        int maxLength = Math.Min(MaxSeqLength ?? 512, config.MaxPositionEmbeddings);
        return new EncoderSpec
        {
            Pooling = Pooling,
            Dense = Dense is not null,
            Metric = Normalize ? DenseMetric.Cos : SimilarityFunction == "euclidean" ? DenseMetric.L2 : DenseMetric.Ip,
            Instructions = tasks.Count == 0 ? EncoderInstructions.None : new EncoderInstructions(null, null, tasks),
            QueryMaxLength = maxLength,
            KeyMaxLength = maxLength,
        };
    }

    /// <summary>
    /// Makes an encoder folder (config.json, weights and tokenizer at its root) a sentence-transformers folder too:
    /// modules.json (Transformer at "", Pooling, Dense when the spec has one, Normalize for cosine), 1_Pooling, 2_Dense,
    /// sentence_bert_config.json and config_sentence_transformers.json with one prompt per task and role
    /// (<c>{task}_query</c>, <c>{task}_key</c>) and "query"/"document" for <paramref name="defaultTask"/>, or for the only task.
    /// </summary>
    /// <param name="dense">The projection after pooling (required when the spec has one).</param>
    public static void Write(string encoderDir, EncoderSpec spec, BertConfig config, DenseLayer? dense, string? defaultTask = null)
    {
        if (spec.Dense != dense is not null)
            throw new ArgumentException(spec.Dense ? "the spec has a dense pooler but none was given" : "a Dense layer was given but the spec has none");
        var modules = new List<(string Path, string Type)> { ("", "Transformer") };
        WriteJson(Path.Combine(encoderDir, PoolingFolder, "config.json"), PoolingConfig(config.HiddenSize, spec.Pooling), FourSpaces);
        modules.Add((PoolingFolder, "Pooling"));
        if (dense is not null)
        {
            var folder = Path.Combine(encoderDir, DenseFolder);
            WriteJson(Path.Combine(folder, "config.json"), new JsonObject
            {
                ["in_features"] = dense.InFeatures,
                ["out_features"] = dense.OutFeatures,
                ["bias"] = dense.Bias is not null,
                ["activation_function"] = dense.Activation == DenseActivation.Tanh ? DenseModuleConfig.TanhActivation : DenseModuleConfig.IdentityActivation,
            }, JsonFormatting.TwoSpaces);
            var tensors = new Dictionary<string, TorchSharp.torch.Tensor> { ["linear.weight"] = dense.Weight };
            if (dense.Bias is { } bias) tensors["linear.bias"] = bias;
            WeightFiles.SaveSafetensors(folder, tensors);
            modules.Add((DenseFolder, "Dense"));
        }
        if (spec.Normalize)
        {
            var folder = $"{modules.Count}_Normalize";
            Directory.CreateDirectory(Path.Combine(encoderDir, folder)); // sentence-transformers saves it empty too
            modules.Add((folder, "Normalize"));
        }
        WriteJson(Path.Combine(encoderDir, "modules.json"), new JsonArray(modules.Select((module, i) => (JsonNode)new JsonObject
        {
            ["idx"] = i,
            ["name"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["path"] = module.Path,
            ["type"] = ModuleNamespace + module.Type,
        }).ToArray()), JsonFormatting.TwoSpaces);
        WriteJson(Path.Combine(encoderDir, "sentence_bert_config.json"),
            new JsonObject { ["max_seq_length"] = Math.Max(spec.QueryMaxLength, spec.KeyMaxLength), ["do_lower_case"] = false }, JsonFormatting.TwoSpaces);
        WriteJson(Path.Combine(encoderDir, ConfigFile), SentenceTransformersConfig(spec, encoderDir, defaultTask), JsonFormatting.TwoSpaces);
    }

    /// <summary>One prompt per task and role, and "query"/"document": <paramref name="defaultTask"/>'s, or the only task's.</summary>
    public static JsonObject PromptsFor(EncoderInstructions instructions, string? defaultTask = null)
    {
        var prompts = new JsonObject();
        var named = instructions.Tasks.Where(t => t.Key != EncoderInstructions.AnyTask).OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        foreach (var (task, instruction) in named)
        {
            prompts[task + QueryPromptSuffix] = instruction.Query;
            prompts[task + KeyPromptSuffix] = instruction.Key;
        }
        if (defaultTask is not null || instructions.Tasks.Count == 1)
        {
            var chosen = instructions.For(defaultTask);
            prompts["query"] = chosen.Query;
            prompts["document"] = chosen.Key;
        }
        return prompts;
    }

    private static JsonObject SentenceTransformersConfig(EncoderSpec spec, string encoderDir, string? defaultTask)
    {
        // We do not run sentence-transformers or PyTorch: __version__ names the lowest sentence-transformers that
        // reads this file (it only warns when the file's version is newer than the installed one) and the
        // transformers version config.json was written with, when it says.
        var versions = new JsonObject { ["sentence_transformers"] = MinimumSentenceTransformersVersion };
        if (JsonFile.ReadObject(Path.Combine(encoderDir, "config.json"))["transformers_version"] is JsonValue transformers)
            versions["transformers"] = transformers.ToString();
        return new JsonObject
        {
            ["__version__"] = versions,
            ["model_type"] = "SentenceTransformer",
            ["prompts"] = PromptsFor(spec.Instructions, defaultTask),
            ["default_prompt_name"] = null,
            ["similarity_fn_name"] = spec.Metric.SimilarityFunctionName(),
        };
    }

    private static JsonObject PoolingConfig(int hiddenSize, PoolingMethod pooling) => new()
    {
        ["word_embedding_dimension"] = hiddenSize,
        ["pooling_mode_cls_token"] = pooling == PoolingMethod.Cls,
        ["pooling_mode_mean_tokens"] = pooling == PoolingMethod.Mean,
        ["pooling_mode_max_tokens"] = false,
        ["pooling_mode_mean_sqrt_len_tokens"] = false,
        ["pooling_mode_weightedmean_tokens"] = false,
        ["pooling_mode_lasttoken"] = false,
        ["include_prompt"] = true,
    };

    // sentence-transformers writes the Pooling config with four spaces.
    private static readonly System.Text.Json.JsonSerializerOptions FourSpaces = new() { WriteIndented = true, IndentSize = 4 };

    private static void WriteJson(string path, JsonNode json, System.Text.Json.JsonSerializerOptions options)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        FileUtil.WriteAllTextAtomic(path, json.ToJsonString(options) + "\n");
    }

    private static PoolingMethod ReadPooling(string configPath)
    {
        var config = JsonFile.ReadNode(configPath);
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
        var config = JsonFile.ReadNode(configPath);
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
