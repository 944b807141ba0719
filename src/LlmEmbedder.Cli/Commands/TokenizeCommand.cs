using System.CommandLine;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Data;
using LlmEmbedder.Tokenization;

namespace LlmEmbedder.Cli.Commands;

/// <summary>tokenize: lines on stdin → one JSON array of token ids per line, with [CLS]/[SEP], as Hugging Face's BertTokenizer.</summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = ModelArgument.Description + " (only its tokenizer files are used)", Required = true };
        // Room for [CLS] and [SEP]; no upper limit, as tokenize reads no model config.
        var maxLength = new Option<int?>("--max_length") { Description = "Truncate to this many tokens (counting [CLS] and [SEP]); none by default" }
            .WithRange(new ArgumentRangeAttribute(2));
        var command = new Command("tokenize", "Tokenize stdin lines to JSON arrays of token ids") { model, maxLength };
        var encoding = new TextEncodingOption();
        encoding.AddTo(command);
        command.SetAction(parsed =>
        {
            var dir = ModelArgument.Resolve(parsed.GetRequiredValue(model));
            // A folder with tokenizer files is used as it is; a run or checkpoint folder gives its query side's tokenizer.
            bool hasTokenizer = File.Exists(Path.Combine(dir, "vocab.txt")) || File.Exists(Path.Combine(dir, "tokenizer.json"));
            var tokenizer = BertTokenizer.FromDirectory(hasTokenizer ? dir : ModelFolder.Open(dir).QueryEncoderDir);
            int limit = parsed.GetValue(maxLength) ?? int.MaxValue;
            using var stdin = Console.OpenStandardInput();
            // Every line is decoded before the first is written, so bad input gives the error alone.
            var lines = TextFile.ReadLines(stdin, TextFile.StdinName, encoding.Get(parsed)).ToList();
            using var stdout = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false)) { AutoFlush = false };
            foreach (var line in lines)
                stdout.WriteLine("[" + string.Join(",", tokenizer.Encode(line, limit)) + "]");
            return 0;
        });
        return command;
    }
}
