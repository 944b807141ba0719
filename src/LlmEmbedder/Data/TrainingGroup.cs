namespace LlmEmbedder.Data;

/// <summary>
/// One preprocessed training sample: the query and its G keys, the chosen positive first, then G−1
/// negatives, instructions already prepended.
/// </summary>
/// <param name="TeacherScores">G scores aligned with <paramref name="Keys"/>; null when the dataset has none.</param>
/// <param name="DatasetIndex">Which entry of --train_data it came from.</param>
public sealed record TrainingGroup(string Query, string[] Keys, float[]? TeacherScores, int DatasetIndex);
