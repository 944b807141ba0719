using System.CommandLine;
using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>export: a trained encoder → a sentence-transformers folder (modules, prompts, Dense kept, model card).</summary>
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

        var command = new Command("export", "Package an encoder as a hub-ready sentence-transformers folder (Transformer → Pooling → [Dense] → [Normalize], prompts, model card)")
        {
            encoder, outputDir, pooling, metric, version, task, instructionFile, maxSeqLength, metricsFile,
        };
        command.SetAction(parsed =>
        {
            OutputPath.CheckFolder(parsed.GetRequiredValue(outputDir), "--output_dir");
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
            });
            if (result.Overridden.Count > 0)
                Console.Error.WriteLine($"llm-embedder: note: flags override the model's encoder spec ({result.SpecSource}): {string.Join(", ", result.Overridden)}");
            var spec = result.Spec;
            Console.Error.WriteLine($"exported {result.EncoderDir} to {result.OutputDir}: {spec.Pooling.Name()} pooling" +
                (result.DenseOutFeatures is { } dense ? $", Dense → {dense}" : "") +
                $", {(spec.Normalize ? "normalised, " : "")}{spec.Metric.SimilarityFunctionName()} similarity" +
                (result.Prompts is { Query.Length: > 0 } prompts ? $", query prompt \"{prompts.Query}\"" : ", no query prompt") +
                (spec.Instructions.Tasks.Count > 0 ? $", instructions for {string.Join(", ", spec.Instructions.Tasks.Keys)}" : ""));
            foreach (var file in result.Files) Console.WriteLine(file);
            return 0;
        });
        return command;
    }
}
