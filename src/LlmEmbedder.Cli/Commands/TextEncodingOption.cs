using System.CommandLine;
using LlmEmbedder.Data;

namespace LlmEmbedder.Cli.Commands;

/// <summary>--encoding of the commands that read text (train has it from ModelArguments): one definition, one help text.</summary>
internal sealed class TextEncodingOption
{
    private readonly Option<string> option = new("--encoding")
    {
        Description = $"Encoding of every text input the command reads ({TextEncoding.Examples}, ...); strict: bytes that do not decode are an error with file:line",
        DefaultValueFactory = _ => "utf-8",
    };

    public void AddTo(Command command) => command.Add(option);

    public TextEncoding Get(ParseResult parsed) => TextEncoding.Parse(parsed.GetRequiredValue(option));
}
