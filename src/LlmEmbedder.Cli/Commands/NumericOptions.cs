using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// The numeric options of every command (int, long, double, their nullables, int[], double[]): each token is parsed with a
/// message a person can act on and checked against the option's declared range while parsing, so a bad value is a
/// one-line usage error before any file is read; --help shows the range after the description.
/// </summary>
internal static class NumericOptions
{
    private static readonly ConditionalWeakTable<Option, ArgumentRangeAttribute> Ranges = [];

    public static bool IsNumeric(Type type) => ElementType(type) is not null;

    /// <summary>The range given to <see cref="WithRange{T}"/>, or null: any value of the option's type.</summary>
    public static ArgumentRangeAttribute? RangeOf(Option option) => Ranges.TryGetValue(option, out var range) ? range : null;

    /// <param name="range">Null: any value of the type (a seed). A range that depends on another flag
    /// (<see cref="ArgumentRangeAttribute.UnusedWhenPositive"/>) is only shown here; the record's Validate() checks it.</param>
    public static Option<T> WithRange<T>(this Option<T> option, ArgumentRangeAttribute? range)
    {
        var element = ElementType(typeof(T)) ?? throw new ArgumentException($"{option.Name} is not numeric ({typeof(T).Name})", nameof(option));
        if (range is not null)
        {
            Ranges.AddOrUpdate(option, range);
            option.Description = $"{option.Description} (range: {range.Describe()})";
        }
        var checkedRange = range?.UnusedWhenPositive is null ? range : null;
        option.CustomParser = result =>
        {
            var values = new List<object>();
            foreach (var token in result.Tokens)
            {
                if (Parse(token.Value, element) is not { } value)
                {
                    result.AddError($"{option.Name}: '{token.Value}' is not {Expected(element)}");
                    return default;
                }
                if (ArgumentRanges.Problem(Convert.ToDouble(value, CultureInfo.InvariantCulture), checkedRange, isInteger: element != typeof(double)) is { } problem)
                {
                    result.AddError($"{option.Name} {problem}");
                    return default;
                }
                values.Add(value);
            }
            return !typeof(T).IsArray ? (T)values.Single()
                : element == typeof(int) ? (T)(object)values.Cast<int>().ToArray()
                : (T)(object)values.Cast<double>().ToArray();
        };
        return option;
    }

    /// <summary><see cref="WithRange{T}"/> for an option whose type is known only at run time (the arguments binder).</summary>
    public static void AddRange(Option option, ArgumentRangeAttribute? range) =>
        typeof(NumericOptions).GetMethod(nameof(WithRange))!.MakeGenericMethod(option.ValueType).Invoke(null, [option, range]);

    private static Type? ElementType(Type type)
    {
        var element = type.IsArray ? type.GetElementType()! : Nullable.GetUnderlyingType(type) ?? type;
        return element == typeof(int) || element == typeof(double) || (!type.IsArray && element == typeof(long)) ? element : null;
    }

    private static object? Parse(string text, Type element) =>
        element == typeof(int) ? int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var i) ? i : null
        : element == typeof(long) ? long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) ? l : null
        : double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : null;

    private static string Expected(Type element) =>
        element == typeof(int) ? $"a whole number from {int.MinValue} to {int.MaxValue}"
        : element == typeof(long) ? $"a whole number from {long.MinValue} to {long.MaxValue}"
        : "a number";
}
