using System.CommandLine;
using System.Globalization;
using LlmEmbedder.Cli.Commands;

namespace LlmEmbedder.Tests.Cli;

/// <summary>
/// Walks every numeric option of every command in the real command tree and gives it values outside its type or its
/// declared range: each must be a usage error naming the flag (exit 1, one line), never a run. The list of numeric
/// flags is spelled out, so a new one fails here until it is given a range (or listed as taking any value).
/// </summary>
public sealed class CliNumericFlagWalkerTests
{
    private static readonly string[] ExpectedNumericFlags =
    [
        "train --query_max_length", "train --key_max_length", "train --cutoffs", "train --hits", "train --batch_size",
        "train --cos_temperature", "train --teacher_temperature", "train --student_temperature", "train --contrastive_weight",
        "train --distill_weight", "train --train_group_size", "train --max_sample_num", "train --teacher_scores_margin",
        "train --teacher_scores_min", "train --per_device_train_batch_size", "train --learning_rate", "train --warmup_ratio",
        "train --weight_decay", "train --num_train_epochs", "train --max_steps", "train --gradient_accumulation_steps",
        "train --save_steps", "train --logging_steps", "train --eval_steps", "train --seed", "train --max_grad_norm",
        "train --early_exit_steps", "train --matryoshka_dims", "train --matryoshka_weights", "train --mini_batch_size",
        "encode --max_length", "encode --batch_size", "encode --dimensions",
        "tokenize --max_length",
        "eval --cutoffs", "eval --hits", "eval --max_length", "eval --batch_size", "eval --dimensions",
        "mine --negative_number", "mine --seed", "mine --max_length", "mine --batch_size", "mine --absolute_margin", "mine --relative_margin",
        "score --max_length", "score --batch_size",
        "serve --max_length", "serve --batch_size", "serve --max_batch_tokens", "serve --max_queue", "serve --max_inputs", "serve --dimensions",
        "export --max_seq_length",
        "merge --weight_step", "merge --cutoffs", "merge --batch_size",
    ];

    // Any value of their type is a setting: only values that are not numbers of that type are wrong.
    private static readonly string[] AnyValueFlags =
        ["train --seed", "train --max_grad_norm", "train --teacher_scores_margin", "train --teacher_scores_min", "mine --seed"];

    private static IEnumerable<(Command Command, Option Option)> NumericOptionsOfEveryCommand() =>
        LlmEmbedderCommand.Create().Subcommands
            .SelectMany(command => command.Options.Where(o => NumericOptions.IsNumeric(o.ValueType)).Select(option => (command, option)));

    [Fact]
    public void TheWalkerFindsEveryNumericFlagAndEachHasARangeOrTakesAnyValue()
    {
        var found = NumericOptionsOfEveryCommand().ToList();
        Assert.Equal(ExpectedNumericFlags.Order(StringComparer.Ordinal), found.Select(Name).Order(StringComparer.Ordinal));
        Assert.Equal(ExpectedNumericFlags.Length, found.Count);
        foreach (var (command, option) in found)
            Assert.True(NumericOptions.RangeOf(option) is not null || AnyValueFlags.Contains(Name((command, option))),
                $"{Name((command, option))} has no declared range");
    }

    [Fact]
    public void EveryOutOfRangeValueOfEveryNumericFlagIsAUsageErrorNamingIt()
    {
        int tried = 0;
        foreach (var (command, option) in NumericOptionsOfEveryCommand())
        {
            foreach (var value in OutOfRange(option))
            {
                string[] args = [command.Name, .. RequiredArguments(command), option.Name, value];
                var parsed = LlmEmbedderCommand.Create().Parse(args);
                Assert.True(parsed.Errors.Count > 0, $"{string.Join(" ", args)}: accepted");
                Assert.Contains(parsed.Errors, e => e.Message.Contains(option.Name, StringComparison.Ordinal));
                tried++;
            }
        }
        Assert.True(tried >= ExpectedNumericFlags.Length * 5, $"only {tried} values tried");
    }

    public static TheoryData<string> NumericFlags => new(ExpectedNumericFlags);

    /// <summary>The same through the real program, one value per flag (the first that its range excludes).</summary>
    [Theory]
    [MemberData(nameof(NumericFlags))]
    public void TheProgramExitsOneWithOneLineNamingTheFlag(string flag)
    {
        var (command, option) = NumericOptionsOfEveryCommand().Single(o => Name(o) == flag);
        var value = OutOfRange(option).Last();
        var dir = TestPaths.NewTempDir("cli-walk");
        try
        {
            var before = CliBadFlagValuesTests.Snapshot(dir);
            var result = CliProcess.Run([command.Name, .. RequiredArguments(command), option.Name, value],
                environment: CliBadFlagValuesTests.Environment(dir), workingDirectory: dir);
            Assert.True(result.ExitCode == 1, $"{flag} {value}: exit code {result.ExitCode}; stderr: {result.Stderr}");
            var line = Assert.Single(result.StderrLines);
            Assert.StartsWith($"llm-embedder: error: {option.Name}", line);
            Assert.DoesNotContain("   at ", result.Stderr);
            Assert.Equal(before, CliBadFlagValuesTests.Snapshot(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>--help shows each declared range; train shows every default its records have (the reference's).</summary>
    [Fact]
    public void HelpShowsEveryRangeAndEveryTrainDefault()
    {
        var help = LlmEmbedderCommand.Create().Subcommands.Where(c => !c.Hidden)
            .ToDictionary(c => c.Name, c => CliProcess.Run([c.Name, "--help"]).Stdout.Split('\n'));
        foreach (var (command, option) in NumericOptionsOfEveryCommand())
        {
            if (NumericOptions.RangeOf(option) is not { } range) continue;
            var line = Assert.Single(help[command.Name], l => l.TrimStart().StartsWith(option.Name + " ", StringComparison.Ordinal));
            Assert.Contains($"(range: {range.Describe()})", line);
        }
        var train = LlmEmbedderCommand.Create().Subcommands.Single(c => c.Name == "train");
        var defaults = new[] { (object)new LlmEmbedder.Training.ModelArguments(), new LlmEmbedder.Training.TrainingArguments() }
            .SelectMany(record => record.GetType().GetProperties().Select(p => (Flag: "--" + LlmEmbedder.Training.RunArguments.FlagName(p.Name), Value: p.GetValue(record))));
        foreach (var (flag, value) in defaults)
        {
            var line = Assert.Single(help["train"], l => l.TrimStart().StartsWith(flag + " ", StringComparison.Ordinal));
            Assert.True(value is null or Array { Length: 0 } || line.Contains("[default: ", StringComparison.Ordinal), $"no default shown: {line}");
        }
    }

    private static string Name((Command Command, Option Option) flag) => $"{flag.Command.Name} {flag.Option.Name}";

    /// <summary>A placeholder for each required option: parsing never opens them.</summary>
    private static IEnumerable<string> RequiredArguments(Command command) =>
        command.Options.Where(o => o.Required).SelectMany(o => new[] { o.Name, "unused" });

    /// <summary>Values no numeric flag of this type may take, then the ones just outside its declared range.</summary>
    private static IEnumerable<string> OutOfRange(Option option)
    {
        var type = option.ValueType.IsArray ? option.ValueType.GetElementType()! : Nullable.GetUnderlyingType(option.ValueType) ?? option.ValueType;
        bool integer = type != typeof(double);
        string[] notOfType = integer
            ? ["99999999999999999999", "1.5", "NaN", "1e309", "ten"]
            : ["NaN", "1e309", "-1e309", "1e39", "ten"];
        foreach (var value in notOfType) yield return value;
        if (NumericOptions.RangeOf(option) is not { } range) yield break;
        double step = integer ? 1 : 0.5;
        double below = range.MinExclusive ? range.Min : range.Min - step;
        if (below == range.Unset) below -= step;
        yield return below.ToString(CultureInfo.InvariantCulture);
        if (double.IsFinite(range.Max) && range.MaxDescription is null) yield return (range.Max + step).ToString(CultureInfo.InvariantCulture);
    }
}
