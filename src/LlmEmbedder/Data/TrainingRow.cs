namespace LlmEmbedder.Data;

/// <summary>
/// One validated line of a training JSONL file. Chat rows ("history") arrive here already mapped the way
/// the reference maps them: no positives, the history as negatives (a teacher picks the positive).
/// </summary>
/// <param name="TeacherScores">One score per key, positives first, then negatives; null when the row has none.</param>
/// <param name="Line">1-based line in the file, for messages about this row.</param>
public sealed record TrainingRow(
    string Query,
    IReadOnlyList<string> Pos,
    IReadOnlyList<string> Neg,
    IReadOnlyList<double>? TeacherScores,
    string? Task,
    bool FromHistory,
    long Line);
