using System.CommandLine;

namespace LlmEmbedder.Cli.Commands;

/// <summary>Runs a command so that a user error is one line on stderr and a non-zero exit, never only a stack trace.</summary>
internal static class CommandRunner
{
    public const int UserError = 1;
    public const int InternalError = 70;

    /// <summary>Stopped by Ctrl-C or SIGTERM (128 + SIGINT, what a shell reports for a process Ctrl-C ended).</summary>
    public const int Interrupted = 130;

    public static int Invoke(ParseResult parsed)
    {
        if (parsed.Errors.Count > 0)
        {
            var command = parsed.CommandResult.Command;
            var help = command is RootCommand ? "llm-embedder --help" : $"llm-embedder {command.Name} --help";
            Console.Error.WriteLine($"llm-embedder: error: {string.Join("; ", parsed.Errors.Select(Describe).Distinct())} (see {help})");
            return UserError;
        }
        try
        {
            return parsed.Invoke(new System.CommandLine.InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Unwrap(e) is EmbedderException user)
        {
            Console.Error.WriteLine($"llm-embedder: error: {user.Message}");
            return UserError;
        }
        catch (Exception e) when (Unwrap(e) is IOException or UnauthorizedAccessException)
        {
            // In our words where the path is known ("cannot write out/x: permission denied"); .NET's own otherwise.
            Console.Error.WriteLine($"llm-embedder: error: {FileSystemErrors.Describe(Unwrap(e)) ?? Unwrap(e).Message}");
            return UserError;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"llm-embedder: internal error: {e.Message}");
            Console.Error.WriteLine(e);
            return InternalError;
        }
    }

    /// <summary>
    /// A parse error on one line, naming its flag: System.CommandLine lists choices on lines of their own and does not
    /// always say which option a bad value was for ("Argument 'x' not recognized").
    /// </summary>
    private static string Describe(System.CommandLine.Parsing.ParseError error)
    {
        var message = string.Join(" ", error.Message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
        var option = error.SymbolResult switch
        {
            System.CommandLine.Parsing.OptionResult result => result.Option,
            System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult result } => result.Option,
            _ => null,
        };
        return option is null || message.Contains(option.Name, StringComparison.Ordinal) ? message : $"{option.Name}: {message}";
    }

    private static Exception Unwrap(Exception e) =>
        e is AggregateException { InnerExceptions.Count: 1 } aggregate ? Unwrap(aggregate.InnerExceptions[0])
        : e is System.Reflection.TargetInvocationException { InnerException: { } inner } ? Unwrap(inner)
        : e;
}
