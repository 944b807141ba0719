using System.CommandLine;
using System.Diagnostics;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Cli.Commands;

/// <summary>encode: texts (one per line, or .jsonl "text") → float32 .npy matrix [rows, hidden], rows in input order.</summary>
internal static class EncodeCommand
{
    public static Command Create()
    {
        var input = new Option<string>("--input") { Description = ".txt (one text per line) or .jsonl with a \"text\" field", Required = true };
        var output = new Option<string>("--output") { Description = "Output .npy file", Required = true };
        var role = new Option<string>("--role")
        {
            Description = "query or key: which instruction of the task, which max length and (untied encoders) which encoder", DefaultValueFactory = _ => "query",
        };
        role.AcceptOnlyFromAmong("query", "key");
        var encoderOptions = new EncoderOptions(defaultBatchSize: 32);

        var command = new Command("encode", "Embed texts into a .npy matrix, as the model's encoder spec says (pooling, normalisation, instruction, max length)")
        {
            encoderOptions.Model, input, output, role, encoderOptions.Dimensions,
        };
        encoderOptions.AddTo(command);
        command.SetAction(parsed =>
        {
            var outputPath = parsed.GetRequiredValue(output);
            OutputPath.CheckFile(outputPath, "--output");
            var textEncoding = encoderOptions.Encoding(parsed);
            var texts = TextInput.Read(parsed.GetRequiredValue(input), textEncoding);
            var request = encoderOptions.Request(parsed, parsed.GetRequiredValue(encoderOptions.Model));
            var side = parsed.GetRequiredValue(role) == "key" ? EmbeddingRole.Key : EmbeddingRole.Query;
            var instruction = request.Spec.Instructions.For(encoderOptions.Task(parsed));
            var prefix = side == EmbeddingRole.Query ? instruction.Query : instruction.Key;
            if (prefix.Length > 0) texts = texts.Select(t => prefix + t).ToList();
            EncoderOptions.Note(request);
            using var encoder = request.Load(side);
            int dimension = parsed.GetValue(encoderOptions.Dimensions) ?? encoder.Dimension;
            EmbeddingDimensions.Check(dimension, encoder.Dimension, "--dimensions");

            var clock = Stopwatch.StartNew();
            var progress = new ThrottledProgress<int>(done => done >= texts.Count, (done, elapsed) =>
            {
                double rate = done / Math.Max(elapsed.TotalSeconds, 1e-9);
                var eta = TimeSpan.FromSeconds((texts.Count - done) / Math.Max(rate, 1e-9));
                Console.Error.WriteLine($"encoded {done}/{texts.Count} texts, {rate:F1}/s, ETA {eta:hh\\:mm\\:ss}");
            });
            var spec = request.Spec;
            var embeddings = EmbeddingDimensions.Truncate(encoder.Encode(texts, side, encoderOptions.BatchSize(parsed), progress), encoder.Dimension, dimension, spec.Normalize);
            Npy.WriteFloat32(outputPath, embeddings, texts.Count, dimension);
            Console.Error.WriteLine($"wrote {outputPath}: {texts.Count} x {dimension}{(dimension < encoder.Dimension ? $" (of {encoder.Dimension})" : "")} float32 " +
                $"({spec.Pooling.Name()} pooling{(spec.Dense ? ", dense" : "")}{(spec.Normalize ? ", L2-normalised" : "")}, " +
                $"max {spec.MaxLength(side)} tokens, {(prefix.Length == 0 ? "no instruction" : $"instruction \"{prefix}\"")}) in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }
}
