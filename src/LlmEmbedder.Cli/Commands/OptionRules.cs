using System.CommandLine;
using System.CommandLine.Parsing;

namespace LlmEmbedder.Cli.Commands;

/// <summary>Checks that involve a whole value or several options, made usage errors so they come before any input is read.</summary>
internal static class OptionRules
{
    /// <summary>
    /// Runs <paramref name="rule"/> while parsing; its <see cref="EmbedderException"/> (the library's own check, so the
    /// same message) becomes the usage error. Skipped while one of <paramref name="options"/> has an error of its own.
    /// </summary>
    public static void AddRule(this Command command, IEnumerable<Option> options, Action<CommandResult> rule)
    {
        var involved = options.ToList();
        command.Validators.Add(result =>
        {
            if (!involved.All(option => Converted(result.GetResult(option)))) return;
            try
            {
                rule(result);
            }
            catch (EmbedderException e)
            {
                result.AddError(e.Message);
            }
        });
    }

    /// <summary>
    /// The option's value in a rule: what was given, else <paramref name="notGiven"/> (pass the default the option
    /// shows; while parsing, System.CommandLine has not filled in defaults yet).
    /// </summary>
    public static T ValueOr<T>(this CommandResult result, Option<T> option, T notGiven) =>
        result.GetResult(option) is { Implicit: false } given ? given.GetValueOrDefault<T>()! : notGiven;

    /// <summary>False when the option was given a value that did not convert: reading it throws, and its error is already reported.</summary>
    private static bool Converted(OptionResult? given)
    {
        if (given is null) return true;
        try
        {
            typeof(OptionResult).GetMethod(nameof(OptionResult.GetValueOrDefault))!.MakeGenericMethod(given.Option.ValueType).Invoke(given, null);
            return !given.Errors.Any();
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is InvalidOperationException)
        {
            return false;
        }
    }
}
