using System.CommandLine;
using LlmEmbedder.Cli.Commands;

var root = new RootCommand("LlmEmbedder.NET: fine-tune, evaluate, convert and serve BERT text-embedding models (LLM-Embedder / BGE recipe).")
{
    EncodeCommand.Create(),
    TokenizeCommand.Create(),
    TrainCommand.Create(),
};
return CommandRunner.Invoke(root, args);
