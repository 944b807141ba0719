using System.CommandLine;
using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Cli.Commands;

/// <summary>export: a trained encoder → a sentence-transformers folder (modules, prompts, Dense kept, model card).</summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var encoder = new Option<string>("--encoder")
        {
            Description = "Encoder folder (config.json, weights, tokenizer; dense_pooler.bin kept as a Dense module) or a training output folder with encoder/",
            Required = true,
        };
        var outputDir = new Option<string>("--output_dir") { Description = "The sentence-transformers folder to write", Required = true };
        var pooling = new Option<string?>("--pooling_method") { Description = "cls or mean; default: the training run's (args.json), else cls" };
        pooling.AcceptOnlyFromAmong("cls", "mean");
        var metric = new Option<string?>("--dense_metric") { Description = "cos (Normalize module, cosine) or ip (dot); default: the training run's, else cos" };
        metric.AcceptOnlyFromAmong("cos", "ip", "l2");
        var version = new Option<string?>("--version") { Description = "Instruction version for the \"query\"/\"document\" prompts; default: the training run's" };
        var task = new Option<string?>("--task") { Description = "Instruction task" };
        var instructionFile = new Option<string?>("--instruction_file") { Description = "JSON file adding instruction versions" };
        var maxSeqLength = new Option<int>("--max_seq_length") { Description = "sentence_bert_config.json max_seq_length", DefaultValueFactory = _ => 512 };
        var metricsFile = new Option<string?>("--metrics_file") { Description = "metrics.json (from eval --output_dir) to put in the model card" };

        var command = new Command("export", "Convert an encoder to the sentence-transformers layout (Transformer → Pooling → [Dense] → [Normalize])")
        {
            encoder, outputDir, pooling, metric, version, task, instructionFile, maxSeqLength, metricsFile,
        };
        command.SetAction(parsed =>
        {
            var result = SentenceTransformersExport.Export(new ExportOptions
            {
                EncoderDir = parsed.GetRequiredValue(encoder),
                OutputDir = parsed.GetRequiredValue(outputDir),
                Pooling = parsed.GetValue(pooling) is { } p ? Pooling.Parse(p) : null,
                DenseMetric = parsed.GetValue(metric),
                Version = parsed.GetValue(version),
                Task = parsed.GetValue(task),
                InstructionFile = parsed.GetValue(instructionFile),
                MaxSeqLength = parsed.GetValue(maxSeqLength),
                MetricsFile = parsed.GetValue(metricsFile),
            });
            Console.Error.WriteLine($"exported {result.EncoderDir} to {result.OutputDir}: {result.Pooling.Name()} pooling" +
                (result.DenseOutFeatures is { } dense ? $", Dense → {dense}" : "") +
                $", {(result.Normalize ? "normalised, " : "")}{result.SimilarityFunction} similarity" +
                (result.Prompts.Query.Length > 0 ? $", query prompt \"{result.Prompts.Query}\"" : ", no query prompt"));
            foreach (var file in result.Files) Console.WriteLine(file);
            return 0;
        });
        return command;
    }
}
