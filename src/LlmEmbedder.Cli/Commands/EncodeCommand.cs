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
        var model = new Option<string>("--model") { Description = "Model folder (Hugging Face or sentence-transformers) or hub id", Required = true };
        var input = new Option<string>("--input") { Description = ".txt (one text per line) or .jsonl with a \"text\" field", Required = true };
        var output = new Option<string>("--output") { Description = "Output .npy file", Required = true };
        var version = new Option<string?>("--version") { Description = "Instruction version (bge, e5, llm-embedder, ...); none by default" };
        var task = new Option<string?>("--task") { Description = "Instruction task (qa, icl, ...)" };
        var role = new Option<string>("--role") { Description = "query or key", DefaultValueFactory = _ => "query" };
        role.AcceptOnlyFromAmong("query", "key");
        var encoderOptions = new EncoderOptions(defaultBatchSize: 32);
        var instructionFile = new Option<string?>("--instruction_file") { Description = "JSON file adding instruction versions" };

        var command = new Command("encode", "Embed texts into a .npy matrix")
        {
            model, input, output, version, task, role, instructionFile,
        };
        encoderOptions.AddTo(command);
        var encoding = new TextEncodingOption();
        encoding.AddTo(command);
        command.SetAction(parsed =>
        {
            var textEncoding = encoding.Get(parsed);
            var texts = TextInput.Read(parsed.GetRequiredValue(input), textEncoding);
            var prefix = InstructionPrefix(parsed.GetValue(version), parsed.GetValue(task), parsed.GetRequiredValue(role), parsed.GetValue(instructionFile), textEncoding);
            if (prefix.Length > 0) texts = texts.Select(t => prefix + t).ToList();

            var dir = ModelArgument.Resolve(parsed.GetRequiredValue(model));
            using var encoder = encoderOptions.Request(parsed, dir).Load();

            var clock = Stopwatch.StartNew();
            var progress = new ThrottledProgress<int>(done => done >= texts.Count, (done, elapsed) =>
            {
                double rate = done / Math.Max(elapsed.TotalSeconds, 1e-9);
                var eta = TimeSpan.FromSeconds((texts.Count - done) / Math.Max(rate, 1e-9));
                Console.Error.WriteLine($"encoded {done}/{texts.Count} texts, {rate:F1}/s, ETA {eta:hh\\:mm\\:ss}");
            });
            var embeddings = encoder.Encode(texts, encoderOptions.BatchSize(parsed), progress);
            var outputPath = parsed.GetRequiredValue(output);
            Npy.WriteFloat32(outputPath, embeddings, texts.Count, encoder.Dimension);
            Console.Error.WriteLine($"wrote {outputPath}: {texts.Count} x {encoder.Dimension} float32 " +
                $"({encoder.Settings.Pooling.Name()} pooling{(encoder.Settings.Normalize ? ", L2-normalised" : "")}) in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }

    private static string InstructionPrefix(string? version, string? task, string role, string? instructionFile, TextEncoding encoding)
    {
        if (version is null && task is null) return "";
        if (version is null || task is null) throw new EmbedderException("--version and --task go together (an instruction is chosen by both)");
        var instructions = instructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(instructionFile, encoding);
        var instruction = instructions.Get(version).InstructionFor(task);
        return role == "query" ? instruction.Query : instruction.Key;
    }
}
