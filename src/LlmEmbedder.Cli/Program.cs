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
    CollectivesCheckCommand.Create(),
};
// Under mpirun every rank parses the same arguments: one copy of a usage error is enough.
if (DistributedLaunch.LaunchRank != 0 && root.Parse(args).Errors.Count > 0) return CommandRunner.UserError;
return DistributedLaunch.Finish(CommandRunner.Invoke(root, args));
