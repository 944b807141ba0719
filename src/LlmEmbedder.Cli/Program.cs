using System.CommandLine;
using LlmEmbedder.Cli.Commands;

// Piped output (logs, CI) should not wrap at 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;

var root = new RootCommand("LlmEmbedder.NET: fine-tune, evaluate, convert and serve BERT text-embedding models (LLM-Embedder / BGE recipe).")
{
    EncodeCommand.Create(),
    TokenizeCommand.Create(),
    TrainCommand.Create(),
    EvalCommand.Create(),
    MineCommand.Create(),
    ExportCommand.Create(),
};
return CommandRunner.Invoke(root, args);
