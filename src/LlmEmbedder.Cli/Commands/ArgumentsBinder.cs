using System.CommandLine;
using System.CommandLine.Parsing;
using System.ComponentModel;
using System.Reflection;
using System.Text.Json;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// Turns an arguments record into command-line options named like run_dense.py's (the snake_case of each
/// property), so flag names cannot drift from the record. --help shows each flag's default (the record's) and the
/// range it declares. Only flags given on the command line override the record's defaults. A bool flag alone means
/// true; "--tie_encoders false" sets it false.
/// </summary>
internal sealed class ArgumentsBinder<T> where T : new()
{
    private readonly List<(PropertyInfo Property, Option Option)> options = [];

    /// <param name="validate">The record's own checks (ranges and the rules between its flags): a failure is a parse
    /// error, so it comes before anything is read, with the same message a library caller gets.</param>
    public ArgumentsBinder(Command command, Action<T> validate)
    {
        var defaults = new T();
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var optionType = typeof(Option<>).MakeGenericType(property.PropertyType);
            var option = (Option)Activator.CreateInstance(optionType, FlagName(property), Array.Empty<string>())!;
            option.Description = property.GetCustomAttribute<DescriptionAttribute>()?.Description;
            if (property.PropertyType == typeof(bool)) option.Arity = ArgumentArity.ZeroOrOne;
            if (property.PropertyType.IsArray) option.AllowMultipleArgumentsPerToken = true;
            // System.CommandLine shows no default for a bool option, and three of run_dense's default to true.
            if (property.GetValue(defaults) is bool flag)
                option.Description += $" [default: {(flag ? "true" : "false")}]";
            else if (property.GetValue(defaults) is { } value)
                typeof(ArgumentsBinder<T>).GetMethod(nameof(ShowDefault), BindingFlags.NonPublic | BindingFlags.Static)!
                    .MakeGenericMethod(property.PropertyType).Invoke(null, [option, value]);
            if (NumericOptions.IsNumeric(property.PropertyType))
                NumericOptions.AddRange(option, property.GetCustomAttribute<ArgumentRangeAttribute>());
            command.Add(option);
            options.Add((property, option));
        }
        command.AddRule(options.Select(o => o.Option), result => validate(Bind(result)));
    }

    public static string FlagName(PropertyInfo property) => "--" + JsonNamingPolicy.SnakeCaseLower.ConvertName(property.Name);

    public T Bind(ParseResult parsed) => Bind(parsed.CommandResult);

    private T Bind(SymbolResult parsed)
    {
        var result = new T();
        foreach (var (property, option) in options)
        {
            if (parsed.GetResult(option) is not { } optionResult || optionResult.Implicit) continue;
            var value = typeof(OptionResult)
                .GetMethod(nameof(OptionResult.GetValueOrDefault))!
                .MakeGenericMethod(property.PropertyType)
                .Invoke(optionResult, null);
            if (property.PropertyType == typeof(bool) && optionResult.Tokens.Count == 0) value = true;
            property.SetValue(result, value);
        }
        return result;
    }

    /// <summary>The record's default as the option's, which --help shows; Bind still takes only flags that were given.</summary>
    private static void ShowDefault<TValue>(Option<TValue> option, TValue value) => option.DefaultValueFactory = _ => value;
}
