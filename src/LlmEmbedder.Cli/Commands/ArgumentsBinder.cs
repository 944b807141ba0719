using System.CommandLine;
using System.ComponentModel;
using System.Reflection;
using System.Text.Json;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// Turns an arguments record into command-line options named like run_dense.py's (the snake_case of each
/// property), so flag names cannot drift from the record. Only flags given on the command line override the
/// record's defaults. A bool flag alone means true; "--tie_encoders false" sets it false.
/// </summary>
internal sealed class ArgumentsBinder<T> where T : new()
{
    private readonly List<(PropertyInfo Property, Option Option)> options = [];

    public ArgumentsBinder(Command command)
    {
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var optionType = typeof(Option<>).MakeGenericType(property.PropertyType);
            var option = (Option)Activator.CreateInstance(optionType, FlagName(property), Array.Empty<string>())!;
            option.Description = property.GetCustomAttribute<DescriptionAttribute>()?.Description;
            if (property.PropertyType == typeof(bool)) option.Arity = ArgumentArity.ZeroOrOne;
            if (property.PropertyType.IsArray) option.AllowMultipleArgumentsPerToken = true;
            command.Add(option);
            options.Add((property, option));
        }
    }

    public static string FlagName(PropertyInfo property) => "--" + JsonNamingPolicy.SnakeCaseLower.ConvertName(property.Name);

    public T Bind(ParseResult parsed)
    {
        var result = new T();
        foreach (var (property, option) in options)
        {
            if (parsed.GetResult(option) is not { } optionResult || optionResult.Implicit) continue;
            var value = typeof(System.CommandLine.Parsing.OptionResult)
                .GetMethod(nameof(System.CommandLine.Parsing.OptionResult.GetValueOrDefault))!
                .MakeGenericMethod(property.PropertyType)
                .Invoke(optionResult, null);
            if (property.PropertyType == typeof(bool) && optionResult.Tokens.Count == 0) value = true;
            property.SetValue(result, value);
        }
        return result;
    }
}
