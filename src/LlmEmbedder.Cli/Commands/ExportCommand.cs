using System.CommandLine;
using System.Globalization;
using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>export: a trained encoder → a sentence-transformers folder (modules, prompts, Dense kept, model card), and with --onnx its ONNX graphs.</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var encoder = new Option<string>("--encoder")
        {
            Description = "Encoder folder, or a training output_dir / checkpoint-N folder with encoder/ (dense_pooler.bin kept as a Dense module)",
            Required = true,
        };
        var outputDir = new Option<string>("--output_dir") { Description = "The sentence-transformers folder to write", Required = true };
        var pooling = new Option<string?>("--pooling_method") { Description = "cls or mean; default: the model's encoder spec" };
        pooling.AcceptOnlyFromAmong("cls", "mean");
        var metric = new Option<string?>("--dense_metric") { Description = "cos (Normalize module, cosine), ip (dot) or l2 (euclidean); default: the model's encoder spec" };
        metric.AcceptOnlyFromAmong([.. DenseMetrics.Names]);
        var version = new Option<string?>("--version") { Description = "Instruction version for the prompts; default: the model's" };
        var task = new Option<string?>("--task") { Description = "The task whose instruction becomes the \"query\"/\"document\" prompts; default: the model's only task" };
        var instructionFile = new Option<string?>("--instruction_file") { Description = "JSON file adding instruction versions" };
        var maxSeqLength = new Option<int?>("--max_seq_length") { Description = "sentence_bert_config.json max_seq_length; default: the model's larger max length" }
            .WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.QueryMaxLength)));
        var metricsFile = new Option<string?>("--metrics_file") { Description = "metrics.json (from eval --output_dir) to put in the model card" };
        var onnx = new Option<bool>("--onnx")
        {
            Description = $"Also write {OnnxEmbeddingModel.DefaultFile} (fp32; pooling, dense and normalisation inside; outputs last_hidden_state and " +
                          $"sentence_embedding), checked against the TorchSharp encoder within {OnnxExport.Tolerance:0E0} before the folder is published",
        };
        var quantize = new Option<string?>("--quantize")
        {
            Description = $"int8: also write {OnnxEmbeddingModel.Int8File} (dynamic int8, per-channel weights) and report its cosine with fp32 " +
                          "(and, with --eval_data, both graphs' metrics); implies --onnx",
        };
        quantize.AcceptOnlyFromAmong("int8");
        var evalData = new Option<string?>("--eval_data") { Description = "With --onnx: eval JSONL (or a BEIR folder) whose texts join the parity gate and score int8 against fp32" };
        var corpus = new Option<string?>("--corpus") { Description = "The corpus of --eval_data" };
        var encoding = new TextEncodingOption();

        var command = new Command("export", "Package an encoder as a hub-ready sentence-transformers folder (Transformer → Pooling → [Dense] → [Normalize], prompts, model card), optionally with ONNX graphs (fp32, int8) checked against the encoder")
        {
            encoder, outputDir, pooling, metric, version, task, instructionFile, maxSeqLength, metricsFile, onnx, quantize, evalData, corpus,
        };
        encoding.AddTo(command);
        command.AddRule([onnx, quantize, evalData, corpus], result =>
        {
            bool writesOnnx = result.ValueOr(onnx, false) || result.ValueOr(quantize, null) is not null;
            if (!writesOnnx && (result.ValueOr(evalData, null) is not null || result.ValueOr(corpus, null) is not null))
                throw new EmbedderException("--eval_data and --corpus are for the ONNX parity gate: add --onnx");
            if (result.ValueOr(corpus, null) is not null && result.ValueOr(evalData, null) is null)
                throw new EmbedderException("--corpus needs --eval_data");
        });
        command.SetAction(parsed =>
        {
            OutputPath.CheckFolder(parsed.GetRequiredValue(outputDir), "--output_dir");
            var onnxOptions = parsed.GetValue(onnx) || parsed.GetValue(quantize) is not null
                ? new OnnxExportOptions
                {
                    Int8 = parsed.GetValue(quantize) == "int8",
                    EvalSet = parsed.GetValue(evalData) is { } data
                        ? RetrievalDataset.Load(data, parsed.GetValue(corpus), encoding: encoding.Get(parsed))
                        : null,
                }
                : null;
            var result = SentenceTransformersExport.Export(new ExportOptions
            {
                EncoderDir = parsed.GetRequiredValue(encoder),
                OutputDir = parsed.GetRequiredValue(outputDir),
                Overrides = new EncoderSpecOverrides(
                    parsed.GetValue(pooling) is { } p ? Pooling.Parse(p) : null,
                    parsed.GetValue(metric) is { } m ? DenseMetrics.Parse(m) : null,
                    parsed.GetValue(maxSeqLength),
                    Version: parsed.GetValue(version),
                    InstructionFile: parsed.GetValue(instructionFile)),
                Task = parsed.GetValue(task),
                MetricsFile = parsed.GetValue(metricsFile),
                Onnx = onnxOptions,
                Progress = new ThrottledProgress<string>(_ => true, (line, _) => Console.Error.WriteLine(line)),
            });
            if (result.Overridden.Count > 0)
                Console.Error.WriteLine($"llm-embedder: note: flags override the model's encoder spec ({result.SpecSource}): {string.Join(", ", result.Overridden)}");
            var spec = result.Spec;
            Console.Error.WriteLine($"exported {result.EncoderDir} to {result.OutputDir}: {spec.Pooling.Name()} pooling" +
                (result.DenseOutFeatures is { } dense ? $", Dense → {dense}" : "") +
                $", {(spec.Normalize ? "normalised, " : "")}{spec.Metric.SimilarityFunctionName()} similarity" +
                (result.Prompts is { Query.Length: > 0 } prompts ? $", query prompt \"{prompts.Query}\"" : ", no query prompt") +
                (spec.Instructions.Tasks.Count > 0 ? $", instructions for {string.Join(", ", spec.Instructions.Tasks.Keys)}" : ""));
            if (result.Onnx is { } report) PrintOnnxReport(report);
            foreach (var file in result.Files) Console.WriteLine(file);
            return 0;
        });
        return command;
    }

    private static void PrintOnnxReport(OnnxExportReport report)
    {
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ONNX fp32: {report.Fp32Bytes / 1048576.0:F1} MiB{(report.ExternalData ? " (weights as external data)" : "")}, " +
            $"max |ONNX Runtime − TorchSharp| {Math.Max(report.Parity.MaxAbsSentenceEmbedding, report.Parity.MaxAbsLastHiddenState):E2} " +
            $"on {report.Parity.Texts} texts (gate {OnnxExport.Tolerance:0E0}: passed)"));
        if (report.Int8 is not { } int8) return;
        var cosines = int8.Cosines;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ONNX int8: {int8.Bytes / 1048576.0:F1} MiB ({100.0 * int8.Bytes / report.Fp32Bytes:F0}% of fp32); cosine with fp32 over {cosines.Rows} texts: " +
            $"min {cosines.Min:F4}, 1st percentile {cosines.Percentile1:F4}, median {cosines.Median:F4}, mean {cosines.Mean:F4}"));
        if (int8.Fp32Metrics is { } fp32 && int8.Int8Metrics is { } quantized)
        {
            MetricTable.PrintComparison("onnx int8", quantized, "onnx fp32", fp32, baselineFirst: true, "int8 − fp32");
            if (int8.Warn)
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"llm-embedder: warning: int8 loses {100 * int8.RelativeDrop:F1}% of {int8.MainMetric} ({fp32[int8.MainMetric!]:F4} → {quantized[int8.MainMetric!]:F4}); " +
                    $"prefer {OnnxEmbeddingModel.DefaultFile} for this model"));
        }
    }
}
