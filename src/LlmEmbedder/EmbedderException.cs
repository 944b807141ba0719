namespace LlmEmbedder;

/// <summary>
/// An error the user can act on (bad file, bad flag, bad model folder). The CLI prints its message
/// as one line on stderr and exits non-zero; anything else is a bug and keeps its stack trace.
/// </summary>
public class EmbedderException : Exception
{
    public EmbedderException(string message) : base(message) { }

    public EmbedderException(string message, Exception inner) : base(message, inner) { }

    /// <summary>An error at one line of an input file, formatted "file:line: what".</summary>
    public static EmbedderException AtLine(string file, long line, string what) => new($"{file}:{line}: {what}");
}
