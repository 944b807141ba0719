namespace LlmEmbedder.Data;

/// <summary>How the one positive of a sample is chosen (--select_positive).</summary>
public enum PositiveSelection
{
    /// <summary>"first": pos[0].</summary>
    First,
    /// <summary>"random": a uniformly random positive.</summary>
    Random,
    /// <summary>"teacher": the key with the highest teacher score over positives and negatives; a negative can be promoted.</summary>
    Teacher,
    /// <summary>"teacher-pos": the positive with the highest teacher score.</summary>
    TeacherPos,
}

/// <summary>How the G−1 negatives of a sample are chosen (--select_negative).</summary>
public enum NegativeSelection
{
    /// <summary>"random": uniformly without replacement.</summary>
    Random,
    /// <summary>"first": the first G−1.</summary>
    First,
    /// <summary>"teacher-": lowest teacher score first.</summary>
    TeacherLowest,
    /// <summary>"teacher+": highest teacher score first.</summary>
    TeacherHighest,
}

/// <summary>The flag spellings of the selection modes, as run_dense.py writes them.</summary>
public static class SelectionNames
{
    private static readonly (string Name, PositiveSelection Value)[] Positive =
        [("first", PositiveSelection.First), ("random", PositiveSelection.Random), ("teacher", PositiveSelection.Teacher), ("teacher-pos", PositiveSelection.TeacherPos)];

    private static readonly (string Name, NegativeSelection Value)[] Negative =
        [("random", NegativeSelection.Random), ("first", NegativeSelection.First), ("teacher-", NegativeSelection.TeacherLowest), ("teacher+", NegativeSelection.TeacherHighest)];

    public static IReadOnlyList<string> PositiveNames { get; } = Positive.Select(p => p.Name).ToArray();
    public static IReadOnlyList<string> NegativeNames { get; } = Negative.Select(n => n.Name).ToArray();

    public static bool TryParsePositive(string name, out PositiveSelection value) => TryFind(Positive, name, out value);
    public static bool TryParseNegative(string name, out NegativeSelection value) => TryFind(Negative, name, out value);

    /// <summary>Parses a --select_positive value; the error names the accepted spellings.</summary>
    public static PositiveSelection ParsePositive(string name) => TryParsePositive(name, out var value)
        ? value
        : throw new EmbedderException($"select_positive \"{name}\" is not one of {string.Join(" | ", PositiveNames)}");

    /// <summary>Parses a --select_negative value; the error names the accepted spellings.</summary>
    public static NegativeSelection ParseNegative(string name) => TryParseNegative(name, out var value)
        ? value
        : throw new EmbedderException($"select_negative \"{name}\" is not one of {string.Join(" | ", NegativeNames)}");

    public static string Name(PositiveSelection value) => Positive.First(p => p.Value == value).Name;
    public static string Name(NegativeSelection value) => Negative.First(n => n.Value == value).Name;

    private static bool TryFind<T>((string Name, T Value)[] table, string name, out T value)
    {
        foreach (var entry in table)
            if (entry.Name == name)
            {
                value = entry.Value;
                return true;
            }
        value = default!;
        return false;
    }
}

/// <summary>
/// The settings that may differ per task: how samples are grouped and how the loss is weighted. Defaults
/// are run_dense.py's command-line defaults; the trainer builds one from the flags, and with
/// --use_train_config a version's <see cref="TaskTrainingOverrides"/> replaces the values it lists.
/// </summary>
public sealed record TaskTrainingConfig(
    PositiveSelection SelectPositive = PositiveSelection.First, NegativeSelection SelectNegative = NegativeSelection.Random,
    int? MaxSampleNum = null, double? TeacherScoresMargin = null, double? TeacherScoresMin = null,
    double ContrastiveWeight = 0.2, double DistillWeight = 1.0,
    double TeacherTemperature = 1.0, double StudentTemperature = 1.0, bool StableDistill = false);

/// <summary>
/// One task's entry of a version's "training" table: only the values it lists (non-null) replace the
/// command line. Field names in JSON are the flag names (select_positive, contrastive_weight, ...).
/// </summary>
public sealed record TaskTrainingOverrides(
    PositiveSelection? SelectPositive = null, NegativeSelection? SelectNegative = null,
    int? MaxSampleNum = null, double? TeacherScoresMargin = null, double? TeacherScoresMin = null,
    double? ContrastiveWeight = null, double? DistillWeight = null,
    double? TeacherTemperature = null, double? StudentTemperature = null, bool? StableDistill = null)
{
    public static IReadOnlyList<string> JsonFieldNames { get; } =
    [
        "select_positive", "select_negative", "max_sample_num", "teacher_scores_margin", "teacher_scores_min",
        "contrastive_weight", "distill_weight", "teacher_temperature", "student_temperature", "stable_distill",
    ];

    public TaskTrainingConfig ApplyTo(TaskTrainingConfig commandLine) => new(
        SelectPositive ?? commandLine.SelectPositive,
        SelectNegative ?? commandLine.SelectNegative,
        MaxSampleNum ?? commandLine.MaxSampleNum,
        TeacherScoresMargin ?? commandLine.TeacherScoresMargin,
        TeacherScoresMin ?? commandLine.TeacherScoresMin,
        ContrastiveWeight ?? commandLine.ContrastiveWeight,
        DistillWeight ?? commandLine.DistillWeight,
        TeacherTemperature ?? commandLine.TeacherTemperature,
        StudentTemperature ?? commandLine.StudentTemperature,
        StableDistill ?? commandLine.StableDistill);
}
