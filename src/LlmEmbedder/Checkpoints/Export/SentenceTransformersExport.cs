using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>What to export and how the exported pipeline encodes.</summary>
public sealed record ExportOptions
{
    /// <summary>An encoder folder, or a training output or checkpoint folder holding encoder/.</summary>
    public required string EncoderDir { get; init; }

    public required string OutputDir { get; init; }

    /// <summary>Flags that override the folder's encoder spec (--pooling_method, --dense_metric, --max_seq_length, --version, ...).</summary>
    public EncoderSpecOverrides Overrides { get; init; } = new();

    /// <summary>The task whose instruction becomes the "query"/"document" prompts; null: the only task, if there is one.</summary>
    public string? Task { get; init; }

    /// <summary>A metrics.json (e.g. from eval --output_dir) to show in the model card.</summary>
    public string? MetricsFile { get; init; }

    /// <summary>Also write the ONNX graphs (onnx/), checked by the parity gate; null: none.</summary>
    public OnnxExportOptions? Onnx { get; init; }

    /// <summary>Lines about long steps (the ONNX export and its gate).</summary>
    public IProgress<string>? Progress { get; init; }
}

/// <summary>What was written.</summary>
/// <param name="Overridden">The spec fields the options changed ("pooling cls → mean"); empty when none.</param>
/// <param name="Files">Paths relative to the output folder, sorted.</param>
public sealed record ExportResult(
    string OutputDir,
    string EncoderDir,
    EncoderSpec Spec,
    string SpecSource,
    IReadOnlyList<string> Overridden,
    int? DenseOutFeatures,
    Instruction? Prompts,
    IReadOnlyList<string> Files,
    OnnxExportReport? Onnx = null);

/// <summary>
/// Packages a trained encoder as a hub-ready sentence-transformers folder: the encoder's files at the root
/// (Transformer), its encoder spec, 1_Pooling, 2_Dense when it has a dense pooler, a Normalize module for cosine
/// similarity, modules.json, config_sentence_transformers.json (prompts, similarity function),
/// sentence_bert_config.json and a README.md model card. The encoder folders training writes are already
/// sentence-transformers folders; export adds the card and applies overrides. The folder appears whole or not at all.
/// </summary>
/// <remarks>
/// The reference's conversion drops the dense pooler, so a model trained with --pooling_method dense silently
/// encodes differently after conversion; here its weight becomes the Dense module (docs/DIFFERENCES.md).
/// </remarks>
public static class SentenceTransformersExport
{
    private static readonly string[] TokenizerFiles =
        ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"];

    public static ExportResult Export(ExportOptions options)
    {
        var model = ModelFolder.Open(options.EncoderDir);
        if (!model.Tied)
            throw new EmbedderException($"{options.EncoderDir}: holds untied {ModelFolder.QueryEncoderFolder}/ and {ModelFolder.KeyEncoderFolder}/; " +
                $"a sentence-transformers model has one encoder, so export one of them (--encoder {model.QueryEncoderDir})");
        var encoderDir = Path.GetFullPath(model.QueryEncoderDir);
        var config = BertConfig.Load(Path.Combine(encoderDir, "config.json"));
        var spec = model.Override(options.Overrides, out var overridden);
        var prompts = options.Task is not null || spec.Instructions.Tasks.Count == 1 ? spec.Instructions.For(options.Task) : null;
        Tokenization.BertTokenizer.FromDirectory(encoderDir); // fails early, with its own message, on a broken tokenizer
        var run = RunArguments.TryRead(Path.Combine(encoderDir, RunArguments.FileName))
            ?? RunArguments.TryRead(Path.Combine(Path.GetDirectoryName(encoderDir.TrimEnd(Path.DirectorySeparatorChar)) ?? encoderDir, RunArguments.FileName));
        using var dense = DenseLayer.LoadFromFolder(encoderDir);
        if (spec.Dense && dense is null)
            throw new EmbedderException($"{model.SpecSource} says the model has a dense pooler but {encoderDir} has no {SentenceEncoder.DensePoolerFile} or Dense module");
        if (dense is not null && dense.InFeatures != config.HiddenSize)
            throw new EmbedderException($"{encoderDir}: the dense pooler takes {dense.InFeatures} features but the encoder's hidden size is {config.HiddenSize}");
        var metrics = options.MetricsFile is null ? null : ModelCard.ReadMetrics(options.MetricsFile);
        var onnx = options.Onnx is { EvalSet: not null } withEval ? withEval with { EvalInstruction = spec.Instructions.For(options.Task) } : options.Onnx;

        var output = Path.GetFullPath(options.OutputDir);
        CheckReplaceable(output);
        ExportResult? result = null;
        AtomicFolder.Publish(output, staging =>
        {
            CopyEncoder(encoderDir, staging);
            spec.Save(staging);
            var exportedDense = spec.Dense ? dense : null;
            if (exportedDense is { IsDensePooler: true }) exportedDense.SaveDensePooler(Path.Combine(staging, SentenceEncoder.DensePoolerFile));
            SentenceTransformersFolder.Write(staging, spec, config, exportedDense, options.Task);

            var card = new ModelCard(
                Name: Path.GetFileName(output.TrimEnd(Path.DirectorySeparatorChar)),
                Config: config, Spec: spec, DenseOutFeatures: exportedDense?.OutFeatures, Prompts: prompts, Task: options.Task,
                Run: run, Metrics: metrics,
                OnnxFiles: onnx is null ? null : onnx.Int8 ? [OnnxEmbeddingModel.DefaultFile, OnnxEmbeddingModel.Int8File] : [OnnxEmbeddingModel.DefaultFile]);
            FileUtil.WriteAllTextAtomic(Path.Combine(staging, "README.md"), card.Render());
            var onnxReport = onnx is null ? null : OnnxExport.Write(staging, spec, onnx, options.Progress);

            var files = Directory.EnumerateFileSystemEntries(staging, "*", SearchOption.AllDirectories)
                .Where(p => File.Exists(p) || !Directory.EnumerateFileSystemEntries(p).Any())
                .Select(p => Path.GetRelativePath(staging, p).Replace(Path.DirectorySeparatorChar, '/'))
                .Order(StringComparer.Ordinal).ToArray();
            result = new ExportResult(output, encoderDir, spec, model.SpecSource, overridden, exportedDense?.OutFeatures, prompts, files, onnxReport);
        });
        return result!;
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
            foreach (var shard in WeightFiles.ReadWeightMap(index).Values.Distinct())
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
}
