using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>What to export and how the exported pipeline encodes.</summary>
public sealed record ExportOptions
{
    /// <summary>An encoder folder (config.json + weights + tokenizer), or a training output folder holding encoder/.</summary>
    public required string EncoderDir { get; init; }

    public required string OutputDir { get; init; }

    /// <summary>cls or mean; null: the training run's --pooling_method (args.json), else cls.</summary>
    public PoolingMethod? Pooling { get; init; }

    /// <summary>cos, ip or l2; null: the training run's --dense_metric (args.json), else cos.</summary>
    public string? DenseMetric { get; init; }

    /// <summary>Instruction version for the "query"/"document" prompts; null: the training run's when it added instructions.</summary>
    public string? Version { get; init; }

    public string? Task { get; init; }
    public string? InstructionFile { get; init; }

    /// <summary>sentence_bert_config.json max_seq_length.</summary>
    public int MaxSeqLength { get; init; } = 512;

    /// <summary>A metrics.json (e.g. from eval --output_dir) to show in the model card.</summary>
    public string? MetricsFile { get; init; }
}

/// <summary>What was written.</summary>
/// <param name="Files">Paths relative to the output folder, sorted.</param>
public sealed record ExportResult(
    string OutputDir,
    string EncoderDir,
    PoolingMethod Pooling,
    bool Normalize,
    string SimilarityFunction,
    int? DenseOutFeatures,
    Instruction Prompts,
    IReadOnlyList<string> Files);

/// <summary>
/// Converts a trained encoder into the sentence-transformers layout (SPEC 2.7): the encoder files at the root
/// (Transformer), 1_Pooling, 2_Dense when the encoder has the reference's dense_pooler.bin, a Normalize module
/// for cosine similarity, modules.json, config_sentence_transformers.json (prompts, similarity function),
/// sentence_bert_config.json and a README.md model card. The folder appears whole or not at all.
/// </summary>
/// <remarks>
/// The reference's conversion drops the dense pooler, so a model trained with --pooling_method dense silently
/// encodes differently after conversion; here its weight becomes the Dense module (docs/DIFFERENCES.md).
/// </remarks>
public static class SentenceTransformersExport
{
    public const string PoolingFolder = "1_Pooling";
    public const string DenseFolder = "2_Dense";
    private const string ModuleNamespace = "sentence_transformers.models.";

    /// <summary>The lowest sentence-transformers release that reads every field written here (prompts, similarity_fn_name).</summary>
    public const string MinimumSentenceTransformersVersion = "3.0.0";

    private static readonly string[] TokenizerFiles =
        ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    private static readonly JsonSerializerOptions TwoSpaces = new()
    {
        WriteIndented = true, IndentSize = 2, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    // sentence-transformers writes the Pooling config with four spaces (fixtures/bge-small-zh-v1.5/1_Pooling/config.json).
    private static readonly JsonSerializerOptions FourSpaces = new() { WriteIndented = true, IndentSize = 4 };

    public static ExportResult Export(ExportOptions options)
    {
        var (encoderDir, run) = LocateEncoder(options.EncoderDir);
        var config = BertConfig.Load(Path.Combine(encoderDir, "config.json"));
        if (options.MaxSeqLength < 2 || options.MaxSeqLength > config.MaxPositionEmbeddings)
            throw new EmbedderException($"max_seq_length {options.MaxSeqLength} must be between 2 and the model's {config.MaxPositionEmbeddings} positions");
        Tokenization.BertTokenizer.FromDirectory(encoderDir); // fails early, with its own message, on a broken tokenizer

        var pooling = options.Pooling ?? PoolingFromRun(run) ?? PoolingMethod.Cls;
        var metric = options.DenseMetric ?? run?.DenseMetric ?? "cos";
        var (normalize, similarity) = metric switch
        {
            "cos" => (true, "cosine"),
            "ip" => (false, "dot"),
            "l2" => (false, "euclidean"),
            _ => throw new EmbedderException($"dense metric '{metric}': expected cos, ip or l2"),
        };
        var densePath = Path.Combine(encoderDir, SentenceEncoder.DensePoolerFile);
        if (!File.Exists(densePath) && run?.PoolingMethod.Contains("dense") == true)
            throw new EmbedderException($"{run.Path} says --pooling_method dense but {encoderDir} has no {SentenceEncoder.DensePoolerFile}");
        var (prompts, promptSource) = ResolvePrompts(options, run);

        var output = Path.GetFullPath(options.OutputDir);
        CheckReplaceable(output);
        ExportResult? result = null;
        AtomicFolder.Publish(output, staging =>
        {
            CopyEncoder(encoderDir, staging);
            var modules = new List<(string Path, string Type)> { ("", "Transformer") };

            WriteJson(Path.Combine(staging, PoolingFolder, "config.json"), PoolingConfig(config.HiddenSize, pooling), FourSpaces);
            modules.Add((PoolingFolder, "Pooling"));

            int? denseOut = null;
            if (File.Exists(densePath))
            {
                denseOut = WriteDense(densePath, Path.Combine(staging, DenseFolder), config.HiddenSize);
                modules.Add((DenseFolder, "Dense"));
            }
            if (normalize)
            {
                var folder = $"{modules.Count}_Normalize";
                Directory.CreateDirectory(Path.Combine(staging, folder)); // sentence-transformers saves it empty too
                modules.Add((folder, "Normalize"));
            }
            WriteJson(Path.Combine(staging, "modules.json"), ModulesJson(modules), TwoSpaces);
            WriteJson(Path.Combine(staging, "config_sentence_transformers.json"), SentenceTransformersConfig(prompts, similarity, encoderDir), TwoSpaces);
            WriteJson(Path.Combine(staging, "sentence_bert_config.json"),
                new JsonObject { ["max_seq_length"] = options.MaxSeqLength, ["do_lower_case"] = false }, TwoSpaces);

            var card = new ModelCard(
                Name: Path.GetFileName(output.TrimEnd(Path.DirectorySeparatorChar)),
                Config: config, Pooling: pooling, DenseOutFeatures: denseOut, Normalize: normalize, SimilarityFunction: similarity,
                MaxSeqLength: options.MaxSeqLength, Prompts: prompts, PromptSource: promptSource, Run: run,
                Metrics: options.MetricsFile is null ? null : ModelCard.ReadMetrics(options.MetricsFile));
            FileUtil.WriteAllTextAtomic(Path.Combine(staging, "README.md"), card.Render());

            var files = Directory.EnumerateFileSystemEntries(staging, "*", SearchOption.AllDirectories)
                .Where(p => File.Exists(p) || !Directory.EnumerateFileSystemEntries(p).Any())
                .Select(p => Path.GetRelativePath(staging, p).Replace(Path.DirectorySeparatorChar, '/'))
                .Order(StringComparer.Ordinal).ToArray();
            result = new ExportResult(output, encoderDir, pooling, normalize, similarity, denseOut, prompts, files);
        });
        return result!;
    }

    /// <summary>The encoder folder and the args.json of its training run (beside it, or in the folder given).</summary>
    private static (string EncoderDir, TrainingRunInfo? Run) LocateEncoder(string dir)
    {
        if (!Directory.Exists(dir)) throw new EmbedderException($"{dir}: encoder folder not found");
        dir = Path.GetFullPath(dir);
        if (File.Exists(Path.Combine(dir, "modules.json")))
            throw new EmbedderException($"{dir}: already a sentence-transformers folder (it has modules.json)");
        if (File.Exists(Path.Combine(dir, "config.json")))
        {
            var beside = Path.Combine(Path.GetDirectoryName(dir.TrimEnd(Path.DirectorySeparatorChar)) ?? dir, TrainingRunInfo.FileName);
            return (dir, TrainingRunInfo.TryRead(Path.Combine(dir, TrainingRunInfo.FileName)) ?? TrainingRunInfo.TryRead(beside));
        }
        var encoder = Path.Combine(dir, "encoder");
        if (File.Exists(Path.Combine(encoder, "config.json")))
            return (encoder, TrainingRunInfo.TryRead(Path.Combine(dir, TrainingRunInfo.FileName)));
        if (Directory.Exists(Path.Combine(dir, "query_encoder")))
            throw new EmbedderException($"{dir}: holds untied query_encoder/ and key_encoder/; a sentence-transformers model has one encoder, so export one of them (--encoder {Path.Combine(dir, "query_encoder")})");
        throw new EmbedderException($"{dir}: no config.json, and no encoder/ folder (expected an encoder folder or a training output folder)");
    }

    private static PoolingMethod? PoolingFromRun(TrainingRunInfo? run)
    {
        if (run is null) return null;
        if (run.PoolingMethod.Contains("mean")) return PoolingMethod.Mean;
        if (run.PoolingMethod.Contains("cls")) return PoolingMethod.Cls;
        return null;
    }

    /// <summary>
    /// The "query" and "document" prompts: the instruction of --version/--task, else of the training run's version
    /// when it added instructions (the task may be left out when the version has one instruction for any task, or
    /// only one task), else none.
    /// </summary>
    private static (Instruction Prompts, PromptSource? Source) ResolvePrompts(ExportOptions options, TrainingRunInfo? run)
    {
        if (options.Task is not null && options.Version is null && run?.Version is null)
            throw new EmbedderException("--task needs --version (an instruction is chosen by both)");
        var version = options.Version ?? (run?.AddInstruction != false ? run?.Version : null);
        if (version is null) return (new Instruction("", ""), null);

        var instructionFile = options.InstructionFile ?? (run?.InstructionFile is { } file && File.Exists(file) ? file : null);
        var instructions = instructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(instructionFile);
        var chosen = instructions.Get(version);
        (Instruction, PromptSource) From(string task) => (chosen.InstructionFor(task), new PromptSource(version, task, instructionFile));
        if (options.Task is not null) return From(options.Task);
        if (chosen.AnyTaskInstruction is not null) return From("any");
        if (chosen.Instructions.Count == 1) return From(chosen.Instructions.Keys.Single());
        throw new EmbedderException(
            $"version \"{version}\" has an instruction per task ({string.Join(", ", chosen.Instructions.Keys.Order(StringComparer.Ordinal))}); say which with --task");
    }

    private static void CheckReplaceable(string output)
    {
        if (File.Exists(output)) throw new EmbedderException($"{output}: is a file; expected a folder to export into");
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any() && !File.Exists(Path.Combine(output, "modules.json")))
            throw new EmbedderException($"{output}: exists and is not an earlier export (no modules.json); choose an empty or new folder");
    }

    /// <summary>config.json, the weights as safetensors (copied when they already are), and the tokenizer files.</summary>
    private static void CopyEncoder(string encoderDir, string destination)
    {
        File.Copy(Path.Combine(encoderDir, "config.json"), Path.Combine(destination, "config.json"));
        var copied = TokenizerFiles.Where(name => File.Exists(Path.Combine(encoderDir, name))).ToList();
        foreach (var name in copied) File.Copy(Path.Combine(encoderDir, name), Path.Combine(destination, name));

        var safetensors = Path.Combine(encoderDir, WeightFiles.SafetensorsName);
        var index = Path.Combine(encoderDir, WeightFiles.SafetensorsIndexName);
        if (File.Exists(safetensors))
        {
            File.Copy(safetensors, Path.Combine(destination, WeightFiles.SafetensorsName));
        }
        else if (File.Exists(index))
        {
            File.Copy(index, Path.Combine(destination, WeightFiles.SafetensorsIndexName));
            var shards = JsonNode.Parse(File.ReadAllText(index))?["weight_map"]?.AsObject()
                .Select(entry => entry.Value?.GetValue<string>()).OfType<string>().Distinct()
                ?? throw new EmbedderException($"{index}: no \"weight_map\" object");
            foreach (var shard in shards)
            {
                if (Path.GetFileName(shard) != shard) throw new EmbedderException($"{index}: shard '{shard}' is not a file name in the model folder");
                File.Copy(Path.Combine(encoderDir, shard), Path.Combine(destination, shard));
            }
        }
        else
        {
            // pytorch_model.bin (or its shards): one model.safetensors, every tensor in the dtype it was stored in.
            var tensors = WeightFiles.Load(encoderDir);
            try
            {
                Safetensors.Write(Path.Combine(destination, WeightFiles.SafetensorsName), tensors);
            }
            finally
            {
                foreach (var tensor in tensors.Values) tensor.Dispose();
            }
        }
    }

    /// <summary>dense_pooler.bin {"weight": [out, in]} → 2_Dense/model.safetensors {"linear.weight"} and its config.</summary>
    private static int WriteDense(string densePoolerPath, string folder, int hiddenSize)
    {
        using var dense = DenseLayer.LoadDensePooler(densePoolerPath);
        if (dense.InFeatures != hiddenSize)
            throw new EmbedderException($"{densePoolerPath}: the weight takes {dense.InFeatures} features but the encoder's hidden size is {hiddenSize}");
        Directory.CreateDirectory(folder);
        WriteJson(Path.Combine(folder, "config.json"), new JsonObject
        {
            ["in_features"] = dense.InFeatures,
            ["out_features"] = dense.OutFeatures,
            ["bias"] = false,
            ["activation_function"] = DenseModuleConfig.IdentityActivation,
        }, TwoSpaces);
        WeightFiles.SaveSafetensors(folder, new Dictionary<string, Tensor> { ["linear.weight"] = dense.Weight });
        return dense.OutFeatures;
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

    private static JsonArray ModulesJson(IReadOnlyList<(string Path, string Type)> modules) =>
        new(modules.Select((module, i) => (JsonNode)new JsonObject
        {
            ["idx"] = i,
            ["name"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["path"] = module.Path,
            ["type"] = ModuleNamespace + module.Type,
        }).ToArray());

    private static JsonObject SentenceTransformersConfig(Instruction prompts, string similarity, string encoderDir)
    {
        // We do not run sentence-transformers or PyTorch: __version__ names the lowest sentence-transformers that
        // reads this file (it only warns when the file's version is newer than the installed one) and the
        // transformers version config.json was written with, when it says.
        var versions = new JsonObject { ["sentence_transformers"] = MinimumSentenceTransformersVersion };
        if (JsonNode.Parse(File.ReadAllText(Path.Combine(encoderDir, "config.json")))?["transformers_version"] is JsonValue transformers)
            versions["transformers"] = transformers.ToString();
        return new JsonObject
        {
            ["__version__"] = versions,
            ["model_type"] = "SentenceTransformer",
            ["prompts"] = new JsonObject { ["query"] = prompts.Query, ["document"] = prompts.Key },
            ["default_prompt_name"] = null,
            ["similarity_fn_name"] = similarity,
        };
    }

    private static void WriteJson(string path, JsonNode json, JsonSerializerOptions options)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        FileUtil.WriteAllTextAtomic(path, json.ToJsonString(options) + "\n");
    }
}
