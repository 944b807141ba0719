using System.CommandLine;

namespace LlmEmbedder.Cli.Commands;

/// <summary>The whole command tree, built in one place so tests can walk every command's options.</summary>
internal static class LlmEmbedderCommand
{
    public static RootCommand Create() => new("LlmEmbedder.NET: fine-tune, evaluate, convert and serve BERT text-embedding models (LLM-Embedder / BGE recipe).")
    {
        EncodeCommand.Create(),
        TokenizeCommand.Create(),
        TrainCommand.Create(),
        EvalCommand.Create(),
        MineCommand.Create(),
        ScoreCommand.Create(),
        ExportCommand.Create(),
        ServeCommand.Create(),
        MergeCommand.Create(),
        CollectivesCheckCommand.Create(),
    };
}
