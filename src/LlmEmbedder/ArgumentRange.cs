using System.Globalization;
using System.Reflection;
using LlmEmbedder.Training;

namespace LlmEmbedder;

/// <summary>
/// The values a numeric argument accepts, declared on the property it limits. The record's Validate() checks it
/// (<see cref="ArgumentRanges.Validate{T}"/>), and the command line checks it while parsing and shows it in --help,
/// so the rule, its error message and its help text cannot drift apart. Every double must in addition be finite in
/// float32, the precision training computes in (<see cref="ArgumentRanges"/>).
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ArgumentRangeAttribute(double min, double max = double.PositiveInfinity) : Attribute
{
    public double Min { get; } = min;
    public double Max { get; } = max;
    public bool MinExclusive { get; set; }

    /// <summary>A value below <see cref="Min"/> that means "not set" (max_steps -1); NaN when there is none.</summary>
    public double Unset { get; set; } = double.NaN;

    /// <summary>The upper limit when only a later step knows it and checks it (max lengths: the model's positions).</summary>
    public string? MaxDescription { get; set; }

    /// <summary>A property of the same record that, when &gt; 0, makes this one unused (num_train_epochs beside max_steps).</summary>
    public string? UnusedWhenPositive { get; set; }

    /// <summary>"&gt; 0", "0 to 1", "-1 or &gt;= 1", "2 to the model's max_position_embeddings", ...</summary>
    public string Describe()
    {
        string main = (Max, MaxDescription) switch
        {
            (_, { } later) => $"{Format(Min)} to {later}",
            (double.PositiveInfinity, _) => $"{(MinExclusive ? ">" : ">=")} {Format(Min)}",
            _ when MinExclusive => $"> {Format(Min)} and <= {Format(Max)}",
            _ => $"{Format(Min)} to {Format(Max)}",
        };
        if (!double.IsNaN(Unset)) main = $"{Format(Unset)} or {main}";
        if (UnusedWhenPositive is { } other) main += $" unless --{RunArguments.FlagName(other)} is given";
        return main;
    }

    public bool Contains(double value) =>
        (!double.IsNaN(Unset) && value == Unset)
        || ((MinExclusive ? value > Min : value >= Min) && value <= Max);

    internal static string Format(double value) => value.ToString("G", CultureInfo.InvariantCulture).Replace('E', 'e');
}

/// <summary>Checks values against their <see cref="ArgumentRangeAttribute"/>; the one place that words the errors.</summary>
public static class ArgumentRanges
{
    /// <summary>The declared range of <typeparamref name="T"/>'s property, or null when any value of its type is fine.</summary>
    public static ArgumentRangeAttribute? Of<T>(string propertyName) =>
        (typeof(T).GetProperty(propertyName) ?? throw new ArgumentException($"{typeof(T).Name} has no property {propertyName}", nameof(propertyName)))
        .GetCustomAttribute<ArgumentRangeAttribute>();

    /// <summary>The declared range of <typeparamref name="T"/>'s property whose flag is <paramref name="flagName"/> (snake_case, no dashes).</summary>
    public static ArgumentRangeAttribute? OfFlag<T>(string flagName) =>
        typeof(T).GetProperties().SingleOrDefault(p => RunArguments.FlagName(p.Name) == flagName)?.GetCustomAttribute<ArgumentRangeAttribute>();

    /// <summary>
    /// What is wrong with <paramref name="value"/> ("must be &gt; 0, got -1"), or null when it is fine. A double
    /// is taken as the float32 it becomes in training: NaN, infinities and magnitudes beyond float32 are never a
    /// setting, and a value that float32 rounds out of the range (1e-320 → 0) is out of it.
    /// </summary>
    public static string? Problem(double value, ArgumentRangeAttribute? range, bool isInteger)
    {
        if (isInteger)
            return range is null || range.Contains(value) ? null : $"must be {range.Describe()}, got {ArgumentRangeAttribute.Format(value)}";
        float single = (float)value;
        string got = ArgumentRangeAttribute.Format(value);
        if (!float.IsFinite(single))
            return $"must be a finite number{(range is null ? "" : " " + range.Describe())}, got {got}" +
                   (double.IsFinite(value) ? " (beyond float32, the precision training computes in)" : "");
        if (range is null || range.Contains(single)) return null;
        return $"must be {range.Describe()}, got {got}" + (range.Contains(value) ? $" ({ArgumentRangeAttribute.Format(single)} in float32, the precision training computes in)" : "");
    }

    /// <summary>
    /// Throws the first problem of <paramref name="arguments"/>'s numeric properties (each element of an array,
    /// nothing for null), naming the flag ("--learning_rate must be &gt; 0, got -1").
    /// </summary>
    public static void Validate<T>(T arguments) where T : notnull
    {
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var range = property.GetCustomAttribute<ArgumentRangeAttribute>();
            if (range?.UnusedWhenPositive is { } other && Convert.ToDouble(typeof(T).GetProperty(other)!.GetValue(arguments), CultureInfo.InvariantCulture) > 0)
                range = null;   // still checked as a number: it is saved in args.json
            foreach (var (value, isInteger) in NumericValues(property.GetValue(arguments)))
                if (Problem(value, range, isInteger) is { } problem)
                    throw new EmbedderException($"--{RunArguments.FlagName(property.Name)} {problem}");
        }
    }

    private static IEnumerable<(double Value, bool IsInteger)> NumericValues(object? value) => value switch
    {
        int number => [(number, true)],
        long number => [(number, true)],
        double number => [(number, false)],
        int[] numbers => numbers.Select(n => ((double)n, true)),
        double[] numbers => numbers.Select(n => (n, false)),
        _ => [],
    };
}
